"""The UI catalogues: extract every translatable sentence, merge it into each language's .po file,
compile the .mo files (what `make i18n` runs).

    python scripts/i18n.py            # after changing a sentence in the code or a template
    python scripts/i18n.py --check    # exit 1 if a catalogue is out of date or incomplete

Babel does the work, as `pybabel extract / update / compile` would, with one difference: the
sentences use `{name}` fields, and Babel also marks a sentence "python-format" when it happens to
hold something like "% of" ("25 % of calls"), after which its compiler refuses translations whose
"%" differ. The flag is dropped here; the fields are checked by tests/test_report_languages.py.
A new or changed sentence is left untranslated (msgstr "") for a translator, and --check fails
until it is translated.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "salescalls" / "locale"
LANGUAGES = ("ru", "hu")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "_markup": None, "nmarkup": (1, 2)}
METHODS = [("salescalls/**.py", "python"), ("salescalls/report/templates/**.html", "jinja2")]
OPTIONS = {"salescalls/report/templates/**.html": {"trim_blocks": "True", "lstrip_blocks": "True"}}


def template() -> Catalog:
    catalog = Catalog(project="salescalls", copyright_holder="salescalls", fuzzy=False)
    for _file, _line, message, comments, context in extract_from_dir(ROOT, METHODS, OPTIONS, KEYWORDS):
        catalog.add(message, None, auto_comments=comments, context=context)
    for message in catalog:
        message.flags.discard("python-format")  # see the module's doc
    return catalog


def _po_bytes(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, sort_output=True, omit_header=False, no_location=True)
    return buffer.getvalue()


def _mo_bytes(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def updated(language: str, source: Catalog) -> tuple[Catalog, list[str]]:
    """The language's catalogue merged with the extracted sentences, and the ones untranslated."""
    path = LOCALE / language / "LC_MESSAGES" / "salescalls.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    catalog.update(source, no_fuzzy_matching=True, update_creation_date=False)
    catalog.obsolete.clear()
    for message in catalog:
        message.flags.discard("python-format")
    missing = [
        str(m.id) for m in catalog if m.id and (not all(m.string if isinstance(m.string, tuple) else [m.string]))
    ]
    return catalog, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    args = parser.parse_args(argv)
    source = template()
    stale = []
    for language in LANGUAGES:
        catalog, missing = updated(language, source)
        folder = LOCALE / language / "LC_MESSAGES"
        po, mo = _po_bytes(catalog), None
        if po != (folder / "salescalls.po").read_bytes():
            stale.append(f"{language}: salescalls.po is not up to date with the code")
        if not args.check:
            (folder / "salescalls.po").write_bytes(po)
        with (folder / "salescalls.po").open("rb") as handle:
            mo = _mo_bytes(read_po(handle, locale=language))
        if mo != (folder / "salescalls.mo").read_bytes():
            stale.append(f"{language}: salescalls.mo is not compiled from salescalls.po")
        if not args.check:
            (folder / "salescalls.mo").write_bytes(mo)
        for message in missing:
            stale.append(f"{language}: untranslated: {message!r}")
        print(f"{language}: {len(catalog)} sentences, {len(missing)} untranslated", file=sys.stderr)
    if args.check and stale:
        print("\n".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
