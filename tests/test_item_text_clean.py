"""Item text is cleaned once, at load: HTML entities decoded, Unicode NFC, whitespace collapsed; prompts and the
item-text renderer (what embeddings read) see the clean text."""

import pandas as pd

from promptrec.data.loaders import load_dataset, load_items
from promptrec.data.validate import clean_text
from promptrec.index.item_text import ItemTextRenderer
from promptrec.prompt.builder import PromptBuilder
from promptrec.data.records import Event


def test_clean_text():
    assert clean_text("Tom &amp; Jerry&reg;") == "Tom & Jerry®"
    assert clean_text("  Cafe\u0301 \n\t du  Monde ") == "Caf\u00e9 du Monde"  # NFC, whitespace
    assert clean_text(None) is None


def test_an_item_file_with_entities_loads_clean(tmp_path):
    (tmp_path / "items.csv").write_text('item_id,title,description,categories\n'
                                        'a,Tom &amp; Jerry&reg;,  A  cat &lt;and&gt; a mouse ,Kids &amp; Family|Toys\n'
                                        'b,Plain,,Toys\n')
    catalog = load_items(tmp_path / "items.csv")
    item = catalog["a"]
    assert item.title == "Tom & Jerry®" and item.description == "A cat <and> a mouse"
    assert item.categories == ("Kids & Family", "Toys")
    assert ItemTextRenderer().render(item).count("Tom & Jerry®") == 1
    assert "&amp;" not in ItemTextRenderer().render(item)
    now = pd.Timestamp("2024-05-08 19:30", tz="UTC")
    prompt = PromptBuilder().build("label_scoring", [Event("u", "b", now - pd.Timedelta(hours=2))], [item, catalog["b"]],
                                   now, catalog)
    assert "Tom & Jerry®" in prompt.text and "&amp;" not in prompt.text and "&reg;" not in prompt.text


def test_a_recbole_item_file_loads_clean(tmp_path):
    (tmp_path / "shop.item").write_text("item_id:token\ttitle:token_seq\ni1\tTom &amp; Jerry&reg;\ni2\tB\n")
    (tmp_path / "shop.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu\ti1\t1\nu\ti2\t2\n")
    ds = load_dataset(tmp_path)
    assert ds.catalog["i1"].title == "Tom & Jerry®"
