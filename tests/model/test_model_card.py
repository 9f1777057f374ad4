"""The model card: built with huggingface_hub's ModelCard / ModelCardData; says what the model is for and not for."""

from __future__ import annotations

from huggingface_hub import ModelCard

from microemo.hub import PIPELINE_TASK, CardInfo, model_card
from microemo.presets import paper_config, tiny_random_config


def reloaded(card) -> ModelCard:
    """The card as the Hub would read it back from README.md."""
    return ModelCard(str(card))


def test_the_card_names_intended_use_prohibited_contexts_limitations_and_evaluation():
    text = str(model_card(paper_config(), CardInfo(weights="converted")))
    for heading in ("## Intended use", "## Out-of-scope uses", "## Limitations and biases", "## How it is evaluated"):
        assert heading in text, heading
    out_of_scope = text.split("## Out-of-scope uses")[1].split("## Limitations")[0]
    assert "EU AI Act" in out_of_scope and "workplace" in out_of_scope and "education" in out_of_scope


def test_the_card_states_the_licences_of_the_parts():
    text = str(model_card(paper_config(), CardInfo(weights="converted")))
    licences = text.split("## Licences of the parts")[1]
    assert "LLAMA 2 Community License" in licences and "CC BY-NC-SA" in licences
    assert "MediaPipe" in licences and "Apache-2.0" in licences


def test_a_tiny_model_card_says_it_is_a_tiny_demo_and_a_paper_sized_one_does_not():
    tiny = reloaded(model_card(tiny_random_config(), CardInfo(weights="trained")))
    assert "tiny-demo" in tiny.data.tags and "Tiny demo model" in tiny.text
    untrained = reloaded(model_card(tiny_random_config(), CardInfo(weights="random")))
    assert "Tiny test model" in untrained.text and "never trained" in untrained.text
    paper = reloaded(model_card(paper_config(), CardInfo(weights="converted")))
    assert "tiny-demo" not in paper.data.tags and "Tiny" not in paper.text


def test_scores_become_a_model_index_and_datasets_are_listed():
    info = CardInfo(weights="trained", datasets=["someone/emer-fine"], scores={"accuracy_s": 0.61, "recall_s": 0.58},
                    eval_dataset=("EMER-Fine", "test"))  # fmt: skip
    card = reloaded(model_card(paper_config(), info))
    assert card.data.datasets == ["someone/emer-fine"]
    results = {result.metric_type: result for result in card.data.eval_results}
    assert results["accuracy_s"].metric_value == 0.61 and results["recall_s"].dataset_split == "test"
    assert "model-index" in str(card)


def test_no_scores_no_model_index():
    assert "model-index" not in str(model_card(paper_config(), CardInfo(weights="converted")))


def test_the_yaml_header_is_what_the_hub_reads():
    card = reloaded(model_card(paper_config(), CardInfo(weights="converted", base_models=["meta-llama/Llama-2-7b-chat-hf"],
                                                        license="llama2")))  # fmt: skip
    assert card.data.license == "llama2" and card.data.pipeline_tag == "video-text-to-text"
    assert card.data.base_model == ["meta-llama/Llama-2-7b-chat-hf"] and card.data.library_name == "transformers"
    assert "custom_code" in card.data.tags


def test_an_adapter_card_shows_peft_usage_and_no_model_table():
    card = reloaded(model_card(None, CardInfo(weights="trained", adapter=True, base_models=["you/microemo-base"])))
    assert card.data.library_name == "peft" and "lora" in card.data.tags
    assert 'PeftModel.from_pretrained(base, "path/to/this/folder")' in card.text
    assert "## Model\n" not in card.text


def test_the_model_table_has_no_blank_lines_inside():
    text = str(model_card(tiny_random_config(), CardInfo(weights="random")))
    table = text.split("## Model\n\n")[1].split("\n\n")[0].splitlines()
    assert table[0] == "| part | setting |" and len(table) == 7


def test_the_cards_pipeline_task_is_the_shipped_pipelines():
    from microemo.modeling_microemo.pipeline_microemo import TASK

    assert PIPELINE_TASK == TASK
    assert f'pipeline("{TASK}"' in str(model_card(tiny_random_config(), CardInfo(weights="random")))
