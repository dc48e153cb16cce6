"""The site's languages (English, Japanese, Simplified Chinese): every page renders in each with no string left
untranslated, the hub's catalogues (hub/locale/) are complete and compiled, and no text in the hub's templates is
left outside a translation tag. README: "Languages and security headers"."""

import gettext
import html.parser
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Engine, NodeList
from django.template.base import Lexer, TokenType
from django.template.loader import render_to_string
from django.templatetags.i18n import BlockTranslateNode, TranslateNode
from django.test import Client
from django.utils import translation
from django.utils.translation.trans_real import DjangoTranslation

from tests.signin import fresh_throttles, verified_user

__all__ = ["fresh_throttles"]  # the autouse fixture, imported

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
LOCALE = ROOT / "hub" / "locale"
LANGUAGES = ["ja", "zh-hans"]  # besides English, the msgids themselves
HOST = {"HTTP_HOST": "127.0.0.1"}

# The hub's templates whose strings must all be translated: every page's (templates/ and the apps' templates/
# folders), not the operators' admin (English, with Django's own translations) nor billing's invoice (not yet).
NOT_TRANSLATED_YET = ("admin/", "billing/invoice.html")
TEMPLATE_DIRS = [TEMPLATES, *(ROOT / app / "templates" for app in ("accounts", "providers", "billing", "hub"))]


def hub_templates() -> list[Path]:
    return sorted(
        path
        for folder in TEMPLATE_DIRS
        for path in folder.rglob("*.html")
        if not path.relative_to(folder).as_posix().startswith(NOT_TRANSLATED_YET)
    )


# The pages, as a visitor and as a signed-in user sees them.

VISITOR_PAGES = [
    "/",
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password/reset/",
    "/accounts/password/reset/done/",
    "/accounts/confirm-email/",
    "/accounts/confirm-email/not-a-key/",
]
USER_PAGES = ["/", "/accounts/email/", "/accounts/password/change/", "/accounts/logout/", "/accounts/reauthenticate/"]


class Misses:
    """The messages a page asked the active language for and got back untranslated (Django's gettext returns the
    msgid itself when no catalogue has it): allauth's, Django's and the hub's, from templates and code alike."""

    def __init__(self, monkeypatch):
        self.seen: set[str] = set()
        self.language = ""
        singular, plural = DjangoTranslation.gettext, DjangoTranslation.ngettext

        def gettext_(catalogue, message):
            result = singular(catalogue, message)
            self.check(catalogue, message, result == message)
            return result

        def ngettext_(catalogue, msgid1, msgid2, n):
            result = plural(catalogue, msgid1, msgid2, n)
            self.check(catalogue, msgid1, result in (msgid1, msgid2))
            return result

        monkeypatch.setattr(DjangoTranslation, "gettext", gettext_)
        monkeypatch.setattr(DjangoTranslation, "ngettext", ngettext_)

    def check(self, catalogue, message: str, missing: bool) -> None:
        # Only the page's language (English is the fallback each one asks last), only words; the languages' own
        # names (settings.LANGUAGES, which the switch shows each in itself) are meant to stay as they are.
        own_names = {name for _, name in settings.LANGUAGES}
        if missing and catalogue.language() == self.language and re.search(r"[^\W\d_]", message):
            if message in own_names:
                return
            self.seen.add(message.split("\x04")[-1])  # pgettext's "context\x04message"


@pytest.fixture
def misses(monkeypatch):
    return Misses(monkeypatch)


def browser_in(language: str) -> Client:
    browser = Client(**HOST)
    browser.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return browser


@pytest.mark.django_db
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page_renders_in_each_language_with_nothing_untranslated(language, misses):
    misses.language = language
    visitor = browser_in(language)
    user = browser_in(language)
    user.force_login(verified_user("mei@example.com"))
    pages = [(visitor, path) for path in VISITOR_PAGES] + [(user, path) for path in USER_PAGES]
    for browser, path in pages:
        response = browser.get(path)
        assert response.status_code == 200, (path, response.status_code)
        page = response.content.decode()
        assert f'<html lang="{language}">' in page, path
        assert f'<option value="{language}" lang="{language}" selected>' in page, path  # the switch shows it
    # django-axes' lockout page, as accounts/lockout.py renders it.
    with translation.override(language):
        page = render_to_string(
            "account/lockout.html", {"failure_limit": 5, "cooloff_timedelta": timedelta(minutes=15)}
        )
    assert "15" in page and "5" in page
    assert not misses.seen, f"untranslated in {language}: {sorted(misses.seen)}"


@pytest.mark.django_db
def test_the_check_sees_an_untranslated_string(misses):
    misses.language = "ja"
    with translation.override("ja"):
        assert translation.gettext("Sign out") == "ログアウト"
        assert translation.gettext("No such string in any catalogue") == "No such string in any catalogue"
    assert misses.seen == {"No such string in any catalogue"}


@pytest.mark.django_db
def test_the_language_switch_posts_the_choice_and_comes_back():
    browser = Client(**HOST)
    home = browser.get("/").content.decode()
    assert '<html lang="en">' in home and 'action="/i18n/setlang/"' in home
    assert '<label for="language-switch">Language</label>' in home  # labelled, and a plain POST form
    response = browser.post("/i18n/setlang/", {"language": "ja", "next": "/accounts/login/"})
    assert response.status_code == 302 and response.url == "/accounts/login/"
    page = browser.get("/accounts/login/").content.decode()
    assert '<html lang="ja">' in page and "ログイン" in page and "Sign in" not in page
    assert browser.cookies[settings.LANGUAGE_COOKIE_NAME]["samesite"] == "Lax"
    # Without a choice, the browser's Accept-Language picks: zh-CN is Simplified Chinese.
    page = Client(HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9", **HOST).get("/").content.decode()
    assert '<html lang="zh-hans">' in page and "退出登录" not in page and "登录" in page


# The catalogues.


def po_entries(path: Path) -> list[dict]:
    """A .po file's entries: msgctxt, msgid, msgid_plural, msgstr (a list: one per plural form) and flags."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry: dict = {"flags": [], "msgstr": []}
        field = None
        for line in block.strip().splitlines():
            if line.startswith("#,"):
                entry["flags"] += [flag.strip() for flag in line[2:].split(",")]
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                value = _unquote(line)
                if field == "msgstr":
                    entry["msgstr"][-1] += value
                else:
                    entry[field] += value
            else:
                keyword, _, rest = line.partition(" ")
                field = "msgstr" if keyword.startswith("msgstr") else keyword
                if field == "msgstr":
                    entry["msgstr"].append(_unquote(rest))
                else:
                    entry[field] = _unquote(rest)
        if "msgid" in entry:
            entries.append(entry)
    return entries


def _unquote(text: str) -> str:
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes[m.group(1)], text.strip()[1:-1])


def template_msgids(path: Path) -> set[tuple[str, str]]:
    """(context, msgid) of every {% translate %} and {% blocktranslate %} in a template (plural forms too), read
    from Django's own parse of it: the msgids Django looks up when it renders the page."""
    engine = Engine.get_default()
    found: set[tuple[str, str]] = set()

    def nodelists(value):
        if isinstance(value, NodeList):
            yield value
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from nodelists(item)
        elif isinstance(value, dict):
            yield from nodelists(list(value.values()))

    def walk(nodelist):
        for node in nodelist:
            context = getattr(node, "message_context", None)
            context = context.var if context is not None else ""
            if isinstance(node, TranslateNode) and node.filter_expression.var.literal is not None:
                found.add((context, node.filter_expression.var.literal))
            elif isinstance(node, BlockTranslateNode):
                found.add((context, node.render_token_list(node.singular)[0]))
                if node.plural:
                    found.add((context, node.render_token_list(node.plural)[0]))
            for value in vars(node).values():
                for child in nodelists(value):
                    walk(child)

    walk(engine.from_string(path.read_text(encoding="utf-8")).nodelist)
    return found


@pytest.mark.parametrize("language", ["ja", "zh_Hans"])
def test_each_catalogue_is_complete_and_compiled(language):
    po = LOCALE / language / "LC_MESSAGES" / "django.po"
    entries = [entry for entry in po_entries(po) if entry["msgid"]]
    assert entries
    for entry in entries:
        assert "fuzzy" not in entry["flags"], entry["msgid"]
        assert entry["msgstr"] and all(entry["msgstr"]), f"{language}: no translation for {entry['msgid']!r}"
    # Every string the templates mark is in it (makemessages was run after the last change).
    catalogued = {
        (entry.get("msgctxt", ""), key) for entry in entries for key in (entry["msgid"], entry.get("msgid_plural"))
    }
    marked = set().union(*(template_msgids(path) for path in hub_templates()))
    assert marked - catalogued == set(), f"run makemessages ({language}): not in {po}"
    # The committed .mo is this .po compiled (compilemessages was run after the last change).
    with open(po.with_suffix(".mo"), "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    for entry in entries:
        key = f"{entry['msgctxt']}\x04{entry['msgid']}" if entry.get("msgctxt") else entry["msgid"]
        if "msgid_plural" in entry:
            assert compiled.ngettext(key, entry["msgid_plural"], 1) == entry["msgstr"][0], entry["msgid"]
        else:
            assert compiled.gettext(key) == entry["msgstr"][0], f"run compilemessages: {entry['msgid']!r}"
    assert len(compiled._catalog) - 1 == len(entries)  # type: ignore[attr-defined]  # and nothing else (1: header)


def test_the_template_reader_finds_every_kind_of_mark(tmp_path):
    sample = tmp_path / "sample.html"
    sample.write_text(
        '{% load i18n %}{% translate "One" %}{% translate "Two" context "menu" %}'
        "{% blocktranslate trimmed with n=x %}\n  Three {{ n }}\n{% endblocktranslate %}"
        "{% if x %}{% blocktranslate count c=x %}a {{ c }}{% plural %}{{ c }} b{% endblocktranslate %}{% endif %}"
    )
    assert template_msgids(sample) == {
        ("", "One"),
        ("menu", "Two"),
        ("", "Three %(n)s"),
        ("", "a %(c)s"),
        ("", "%(c)s b"),
    }


# No text left outside the translation tags.

# What may stay as it is: inside <code>, <pre>, <script>, <style>; and these words (names and symbols).
UNTRANSLATED_WORDS = {"·"}
SKIPPED_ELEMENTS = {"code", "pre", "script", "style"}
TEXT_ATTRIBUTES = {"title", "alt", "placeholder", "aria-label", "aria-description", "value", "label"}
# {% block %}s that fill an attribute, not the page: main_class is the <main>'s class.
ATTRIBUTE_BLOCKS = {"main_class"}


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ("input", "meta", "link", "br", "img", "hr"):
            self.open.append(tag)
        for name, value in attrs:
            if name in TEXT_ATTRIBUTES and value and not (tag == "input" and name == "value"):
                self.words(value)

    def handle_endtag(self, tag):
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]

    def handle_data(self, data):
        if not SKIPPED_ELEMENTS & set(self.open):
            self.words(data)

    def words(self, text):
        for word in text.split():
            if word not in UNTRANSLATED_WORDS and re.search(r"[^\W\d_]", word):
                self.found.append(word)


def untranslated_text(source: str) -> list[str]:
    """Words a template would show as they are: its text outside {% translate %}, {% blocktranslate %} and
    {% comment %}, tags and variables taken out (an attribute's value counts when a user reads it: title, alt...)."""
    text, skip = [], None
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            word = token.split_contents()[0]
            if skip:
                if word == skip:
                    skip = None
                continue
            if word in ("blocktranslate", "blocktrans"):
                skip = "end" + word
            elif word == "comment":
                skip = "endcomment"
            elif word == "block" and token.split_contents()[1] in ATTRIBUTE_BLOCKS:
                skip = "endblock"
            text.append("\x00")  # a tag or variable: no words of its own
        elif token.token_type == TokenType.TEXT and not skip:
            text.append(token.contents)
        elif not skip:
            text.append("\x00")
    parser = _Text()
    parser.feed("".join(text))
    parser.close()
    return parser.found


@pytest.mark.parametrize("path", hub_templates(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_text_outside_translation_tags(path):
    assert untranslated_text(path.read_text(encoding="utf-8")) == []


def test_the_text_scan_catches_text_and_labels_outside_translate():
    assert untranslated_text('<p>Hello <b>{{ name }}</b></p><a title="Your email" href="#">x</a>') == [
        "Hello",
        "Your",
        "email",
        "x",
    ]
    assert (
        untranslated_text("{% comment %}Notes{% endcomment %}{% blocktranslate %}Hi {{ n }}{% endblocktranslate %}")
        == []
    )
    assert untranslated_text('<pre><code>print("hello")</code></pre>{% translate "Hi" %} · <input value="ok">') == []


@pytest.mark.django_db
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_hubs_own_messages_from_code_are_translated_too(language, settings, misses):
    """accounts/auth_adapter.py's invite-only refusal, on the sign-up form."""
    misses.language = language
    settings.HUB_SIGNUP_MODE = "invite"
    page = browser_in(language).post(
        "/accounts/signup/", {"email": "x@example.com", "password1": "a", "password2": "a"}
    )
    assert page.status_code == 200
    with translation.override(language):
        from accounts.auth_adapter import NOT_INVITED

        assert str(NOT_INVITED) in page.content.decode() and str(NOT_INVITED).isascii() is False
    assert not misses.seen, f"untranslated in {language}: {sorted(misses.seen)}"
