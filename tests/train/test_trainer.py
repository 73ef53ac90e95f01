"""curate.train.trainer: the loop's own choices (the units have their own tests; tests/train/test_train.py runs it)."""
import numpy as np

from curate.train import TrainConfig, train
from curate.train.trainer import fit_batch_size


def test_a_small_set_gets_a_smaller_batch_in_a_new_config():
    cfg = TrainConfig(batch_size=256)
    fitted = fit_batch_size(cfg, 100)
    assert fitted.batch_size == 64 and cfg.batch_size == 256  # the largest power of two the set fills
    assert fit_batch_size(cfg, 256) is cfg and fit_batch_size(TrainConfig(batch_size=8), 3).batch_size == 2
    assert fit_batch_size(TrainConfig(batch_size=8), 1).batch_size == 2  # at least 2
    assert {k: v for k, v in fitted.to_dict().items() if k != "batch_size"} == \
        {k: v for k, v in cfg.to_dict().items() if k != "batch_size"}


def test_training_leaves_the_config_alone_and_reports_the_batch_it_used(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    cfg = TrainConfig(epochs=2.0, batch_size=256, stem="small", precision="fp32", health_minutes=0)
    result = train(images, np.arange(20), cfg, tmp_path)
    assert cfg.batch_size == 256
    assert result.batch_size == 16 and result.steps == 2 and result.images_seen == 32
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "train_log.jsonl").exists()


def test_names_other_modules_import_from_the_trainer_are_the_units_own():
    from curate.train import trainer
    from curate.train.health_monitor import HealthProbe, RepresentationCollapsed
    from curate.train.nan_policy import MAX_SKIPPED_STEPS, grads_finite
    from curate.train.snapshots import snapshot_file

    assert (trainer.HealthProbe, trainer.RepresentationCollapsed, trainer.MAX_SKIPPED_STEPS, trainer.grads_finite,
            trainer.snapshot_file) == (HealthProbe, RepresentationCollapsed, MAX_SKIPPED_STEPS, grads_finite,
                                       snapshot_file)
    assert set(trainer.__all__) <= set(dir(trainer))
