"""Every path that reads a checkpoint answers an empty, truncated or foreign file with one sentence naming it
(never torch's advice to load with ``weights_only=False``): ``gaplab train --resume`` (exit 2) and 04_samples."""

import pytest
from gaplab import cli
from gaplab.errors import CheckpointError
from gaplab.pipeline.config import load_study

BAD = [b"", b"PK\x03\x04garbage", b"\x80\x04not a checkpoint"]


@pytest.mark.parametrize("content", BAD)
def test_train_resume_from_a_bad_checkpoint_is_exit_2(tmp_path, capsys, recwarn, root, content):
    out = tmp_path / "outputs"
    ckpt = out / "ci" / ".staging" / "train-small_data" / "ckpt" / "last.pt"  # an interrupted gaplab train
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(content)
    code = cli.main(
        [
            "train",
            str(root / "params" / "ci.yaml"),
            "--phase",
            "small_data",
            "--outputs",
            str(out),
            "--quiet",
            "--resume",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert str(ckpt) in err and "not a readable gaplab checkpoint" in err
    assert "weights_only" not in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "ci" / "small_data").exists()  # nothing placed
    assert not [w for w in recwarn if "weights_only" in str(w.message)]  # nor torch's warning about it


def test_resume_with_nothing_to_resume_is_one_sentence(tmp_path, capsys, root):
    out = tmp_path / "outputs"
    code = cli.main(
        [
            "train",
            str(root / "params" / "ci.yaml"),
            "--phase",
            "small_data",
            "--outputs",
            str(out),
            "--quiet",
            "--resume",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "nothing to resume for phase 'small_data'" in err and "ckpt/last.pt" in err


@pytest.mark.parametrize("content", BAD)
def test_samples_stage_names_the_bad_checkpoint(tmp_path, recwarn, root, content):
    from gaplab.pipeline.stages import samples

    study = load_study(root / "params" / "ci.yaml")
    params = study.phase("small_data").resolved("ci", str(tmp_path))
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "best.pt").write_bytes(content)
    with pytest.raises(CheckpointError) as exc:
        samples(params)
    msg = str(exc.value)
    assert str(tmp_path / "ckpt" / "best.pt") in msg and "weights_only" not in msg
    assert not [w for w in recwarn if "weights_only" in str(w.message)]  # nor torch's warning about it
