"""The masterclass in other languages runs the very commands of the English guide: every
```bash block (runnable or not), fence line included, byte for byte and in order. So
``tests/test_masterclass.py`` runs them once, from the English file, and a translation cannot
drift from what was tested. Fast: reads text only."""

import re

import pytest

from tests.conftest import REPO

GUIDE = REPO / "docs" / "masterclass.md"
TRANSLATIONS = sorted(GUIDE.parent.glob("masterclass.*.md"))


def bash_blocks(text: str) -> list[str]:
    """Every ```bash block with its fence line (so `bash runnable` markers count)."""
    return re.findall(r"^(```bash[^\n]*\n.*?^```)$", text, flags=re.S | re.M)


def sections(text: str) -> list[str]:
    return re.findall(r"^##+ ", text, flags=re.M)


def test_there_is_a_translation_and_the_guides_link_it():
    assert [p.name for p in TRANSLATIONS] == ["masterclass.es.md"]
    top = "\n".join(GUIDE.read_text().splitlines()[:5])
    readme = (REPO / "README.md").read_text()
    for path in TRANSLATIONS:
        assert f"]({path.name})" in top, f"link {path.name} from the top of {GUIDE.name}"
        assert f"](docs/{path.name})" in readme, f"link docs/{path.name} from README.md"


@pytest.mark.parametrize("path", TRANSLATIONS, ids=lambda p: p.name)
def test_a_translation_has_the_english_commands_in_the_same_order(path):
    english, translated = bash_blocks(GUIDE.read_text()), bash_blocks(path.read_text())
    assert len(english) >= 20
    assert translated == english
    assert sections(path.read_text()) == sections(GUIDE.read_text())


def test_every_config_file_the_guide_names_exists():
    named = set(re.findall(r"(?<![\w/])(?:jobs|serve)/[\w/.-]+\.yaml", GUIDE.read_text()))
    assert "jobs/configs/finetune/llama3_8b_lora.yaml" in named
    missing = sorted(p for p in named if not (REPO / p).is_file())
    assert not missing, f"the guide names files that do not exist: {missing}"
