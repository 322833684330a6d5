import jsonschema
import yaml

from stream_ner import topics
from stream_ner.settings import Settings, TopicSettings


def test_committed_schemas_match_the_models():
    directory = topics.spec_dir(Settings()) / "schemas"
    for name, schema in topics.json_schemas().items():
        assert (directory / name).read_text() == topics.render_schema(schema), (
            f"run `stream-ner topics schemas`: {name}"
        )


def test_every_spec_names_a_setting_and_an_existing_schema():
    settings = Settings(topics=TopicSettings(entities="custom-entities", replication_factor=1))
    specs = {s.setting: s for s in topics.load_specs(settings)}
    assert set(specs) == {"raw_posts", "entities", "brand_aggregates", "dlq", "brand_alerts"}
    assert specs["entities"].name == "custom-entities"
    for spec in specs.values():
        assert spec.replication_factor == 1
        assert int(spec.config.get("min.insync.replicas", "1")) <= 1  # never above the replication factor

    for path in topics.spec_dir(settings).glob("*.yaml"):  # the documented value schema exists
        assert (path.parent / yaml.safe_load(path.read_text())["value_schema"]).is_file(), path.name


def test_post_schema_accepts_a_sample_and_refuses_unknown_fields():
    schema = topics.json_schemas()["post.schema.json"]
    jsonschema.validate({"id": "1", "text": "hi", "metadata": {"x": 1}}, schema)
    try:
        jsonschema.validate({"id": "1", "text": "hi", "extra": 1}, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("unknown field accepted")


def test_a_topic_counts_as_led_only_with_its_partitions_all_led():
    from types import SimpleNamespace as NS

    def topic(*leaders: int, error: object = None) -> NS:
        return NS(error=error, partitions={i: NS(leader=leader) for i, leader in enumerate(leaders)})

    assert topics._led(topic(1, 1), 0) and topics._led(topic(1, 1), 2)
    assert not topics._led(topic(1, 1), 3)  # partitions being added: not there yet
    assert not topics._led(topic(1, -1), 2)  # one partition without a leader
    assert not topics._led(topic(), 0) and not topics._led(None, 0)
    assert not topics._led(topic(1, error="UNKNOWN_TOPIC_OR_PART"), 1)
