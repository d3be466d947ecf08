// Refuse a file over the upload cap before sending it: the server would refuse it only after the upload.
document.querySelectorAll("form[data-max-bytes]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    var input = form.querySelector('input[type="file"]');
    var file = input && input.files[0];
    var note = form.querySelector(".upload-too-large");
    note.hidden = true;
    if (file && file.size > Number(form.dataset.maxBytes)) {
      event.preventDefault();
      note.textContent = "“" + file.name + "”超过大小上限（单个文件不超过 " + form.dataset.maxLabel +
        "），请压缩或降低扫描分辨率后重新选择。";
      note.hidden = false;
    }
  });
});
