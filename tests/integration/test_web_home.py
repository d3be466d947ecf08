"""The public pages: the front page, the consultation contacts, the error pages, Bootstrap served from the package."""
import re

import pytest

from tests.webclient import text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

# 朝财会〔2019〕127号 附件1, in the notice's order.
CONTACTS = [
    ("市本级", "0421-3608136", "朝阳大街三段 11 号 111 室"),
    ("凌源市财政局", "0421-7955041", "凌源市红山路西段 169 号"),
    ("北票市财政局", "0421-5086528", "北票市南山街 3 段 2 号"),
    ("朝阳县财政局", "0421-8996561", "朝阳县新县城柳城街道燕京街 12 号"),
    ("建平县财政局", "0421-7814337", "建平县万寿街道环城路 11 号"),
    ("喀左县财政局", "0421-4838595", "喀左县利州街道湖南路 190 号"),
    ("双塔区财政局", "0421-2855527", "朝阳文化路二段三号"),
    ("龙城区财政局", "0421-2611447", "朝阳友谊大街三段 14-1 号"),
]


class TestFrontPage:
    def test_explains_who_takes_part_and_offers_sign_up_and_sign_in(self, client):
        page = text(client.get("/"))
        assert "辽财会〔2019〕116号" in page and "属地化原则" in page
        assert 'href="/register"' in page and 'href="/login"' in page
        for _, phone, _ in CONTACTS:
            assert phone in page

    def test_a_signed_in_person_is_not_offered_sign_up(self, auth):
        page = text(auth("owner").get("/"))
        assert "新人员注册</a>" not in page and ">退出</button>" in page and "我的档案" in page


class TestContacts:
    def test_lists_the_eight_offices_with_phone_and_address_in_order(self, client):
        page = text(client.get("/contacts"))
        row = r'<tr><td>([^<]+)</td>\s*<td><a href="tel:([^"]+)">[^<]+</a></td><td>([^<]+)</td></tr>'
        rows = re.findall(row, page)
        assert rows == CONTACTS


class TestErrorPages:
    @pytest.mark.parametrize("path, method, code, title", [
        ("/no-such-page", "get", 404, "未找到"),
        ("/logout", "get", 405, "请求方式不允许"),
        ("/login", "post", 400, "请求无效"),
    ])
    def test_errors_answer_in_chinese(self, client, path, method, code, title):
        response = getattr(client, method)(path)
        assert response.status_code == code and f"<h1 class=\"h4\">{title}</h1>" in text(response)


class TestNoInternetNeeded:
    def test_bootstrap_is_served_by_the_site_itself(self, client):
        page = text(client.get("/"))
        sources = re.findall(r'(?:href|src)="([^"]+\.(?:css|js))"', page)
        assert sources and all(source.startswith("/bootstrap/static/") for source in sources)
        for source in sources:
            assert client.get(source).status_code == 200
