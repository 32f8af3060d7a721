"""Classes matched across datasets that spell the same expression differently."""

import json

import torch

from curate.data.readers.rafdb import RAFDB_CLASSES
from curate.data.table import FER2013_CLASSES
from curate.expression_names import expression_of, match_classes
from curate.jobs import warm_start
from dmue_core import DMUE, DMUEConfig
from dmue_core.export import save_target_model, to_target_model


def test_spellings_of_one_expression_match_and_the_same_name_comes_first():
    assert expression_of(" Happiness ") == "happy" and expression_of("anger_1") == "angry"
    assert expression_of("bored") is None
    matched = match_classes(RAFDB_CLASSES, FER2013_CLASSES)
    assert matched == {
        "surprise": "surprise",
        "fear": "fear",
        "disgust": "disgust",
        "happiness": "happy",
        "sadness": "sad",
        "anger": "angry",
        "neutral": "neutral",
    }
    sfew = ["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]  # SFEW's folder names
    assert match_classes(sfew, FER2013_CLASSES) == {n: n.lower() for n in sfew}
    # contempt has no class among FER2013's; a name of another expression never matches
    assert "contempt" not in match_classes(["contempt", "happy"], FER2013_CLASSES)
    assert match_classes(["joy"], ["sad", "bored"]) == {}
    # the same name wins over a spelling, and a spelling taken by two classes matches neither
    assert match_classes(["happy", "happiness"], ["happy"]) == {"happy": "happy"}
    assert match_classes(["joy", "happiness"], ["happy"]) == {}
    assert match_classes(["happiness"], ["happy", "joy"]) == {}


def test_init_from_takes_each_class_from_the_same_expression_under_another_spelling(tmp_path):
    torch.manual_seed(0)
    source = DMUE(DMUEConfig(num_classes=7, backbone="fer_cnn"))
    for p in source.parameters():
        p.data.normal_(0, 0.1)
    model_pt = save_target_model(source, tmp_path / "model.pt")
    (tmp_path / "classes.json").write_text(json.dumps(list(FER2013_CLASSES)))

    classes = [*RAFDB_CLASSES, "contempt"]  # RAF-DB's spellings and order, and a class FER2013 lacks
    model = DMUE(DMUEConfig(num_classes=8, backbone="fer_cnn"))
    fresh_contempt = model.target_head.weight[7].clone()
    line = warm_start(model, model_pt, classes)

    assert "other spellings: happiness as happy, sadness as sad, anger as angry" in line
    assert "new classes start fresh: contempt" in line
    exported = to_target_model(source).classifier.weight  # the neck folded in: the rows a plain start copies
    spelt_as = match_classes(RAFDB_CLASSES, FER2013_CLASSES)
    for row, name in enumerate(RAFDB_CLASSES):
        torch.testing.assert_close(model.target_head.weight[row], exported[FER2013_CLASSES.index(spelt_as[name])])
    torch.testing.assert_close(model.target_head.weight[7], fresh_contempt)
