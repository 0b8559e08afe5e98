"""`/docs` and `/redoc` render with no internet access: every asset they load is served
by the app itself, from the installed package, and Swagger UI is new enough for the
OpenAPI 3.1 document FastAPI writes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from tests.api.world import Api

ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _Assets(HTMLParser):
    """The URLs a page makes the browser fetch: `<script src>` and `<link href>`."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        self.urls.extend(value for name, value in attrs if name == wanted and value)


def _assets(api: Api, page: str) -> list[str]:
    response = api.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = _Assets()
    parser.feed(response.text)
    return parser.urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_assets_the_app_serves(api: Api, page: str) -> None:
    urls = _assets(api, page)
    assert any(url.endswith(".js") for url in urls)
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), url
        assert url.startswith("/"), url
        asset = api.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert ASSET_TYPES[suffix] in asset.headers["content-type"], url
        assert len(asset.content) > (100 if suffix == ".png" else 50_000), url


def test_swagger_ui_can_render_openapi_3_1(api: Api) -> None:
    assert api.get("/openapi.json").json()["openapi"].startswith("3.1")
    (bundle,) = [url for url in _assets(api, "/docs") if url.endswith("swagger-ui-bundle.js")]
    found = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', api.get(bundle).text)
    assert found is not None
    assert int(found.group(1)) >= 5  # Swagger UI 4 shows nothing for an OpenAPI 3.1 document


def test_docs_page_points_at_the_app_document_and_oauth2_redirect(api: Api) -> None:
    page = api.get("/docs").text
    assert "url: '/openapi.json'" in page
    assert "'/docs/oauth2-redirect'" in page
    redirect = api.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "oauth2" in redirect.text


def test_openapi_still_offers_the_bearer_authorize_button(api: Api) -> None:
    document = api.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/api/v1/models"]["get"]["security"] == [{"bearer": []}]
