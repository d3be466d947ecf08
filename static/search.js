// Choosing another order re-runs the search (the 检索 button does the same without script).
document.getElementById("sort").addEventListener("change", function () { this.form.submit(); });
