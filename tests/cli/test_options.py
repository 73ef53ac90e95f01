"""Options declared once (curate/steps/options.py): the flags built from them, what each reaches, and
the DDP launcher's rank command rebuilt from them."""
import argparse
import dataclasses

import pytest

from curate.cli import build_parser, main
from curate.cli.commands import run_options
from curate.options import from_namespace, option_fields, to_argv
from curate.steps.options import RUN_GROUPS, RunOptions
from curate.train.launch import RANK_GROUPS, worker_argv

COMMANDS = [name for name in next(a for a in build_parser()._actions
                                  if isinstance(a, argparse._SubParsersAction)).choices]

# the flags each pipeline command took before the options were declared once (DESIGN.md §2, §6): kept
BEFORE = {
    "run": "--actors --address --backbone --batch-size --checkpoint-minutes --dedup-threshold --device --engine --epochs "
           "--gpus-per-actor --health-minutes --holdout --image-size --index-memory --lr --map-method --minutes --nnodes "
           "--node-rank --nproc --optimizer --precision --preset --rdzv-backend --rdzv-endpoint --rdzv-id --recall "
           "--retrain --seed --select --snapshot-minutes --stop-on-collapse --task --threads",
    "train": "--address --backbone --batch-size --checkpoint-minutes --device --engine --epochs --health-minutes "
             "--holdout --image-size --lr --minutes --nnodes --node-rank --nproc --optimizer --precision --preset "
             "--rdzv-backend --rdzv-endpoint --rdzv-id --resume --seed --snapshot-minutes --stop-on-collapse --task "
             "--threads",
    "embed": "--actors --address --batch-size --engine --gpus-per-actor --index-memory --model --recall --threads",
    "scan": "--address --engine --threads",
}


def options(*argv: str) -> RunOptions:
    return run_options(build_parser().parse_args(list(argv)))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and "usage: curate" in capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(BEFORE))
def test_no_flag_is_lost(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = capsys.readouterr().out
    assert [f for f in BEFORE[command].split() if f not in shown] == []


def test_every_run_option_has_help_and_a_group():
    for f in option_fields(RunOptions):
        assert f.metadata["help"] and (f.metadata["group"] in RUN_GROUPS + ("process", "resume", "model")), f.name


def test_defaults_are_the_dataclass_defaults():
    parsed = options("run", "imgs", "-w", "ws")
    assert dataclasses.replace(parsed, images=None, workspace=None, engine_options={}) == RunOptions()
    assert parsed.engine_options == {"address": None, "actors": None, "gpus_per_actor": 0.0}


def test_batch_size_is_the_training_batch_and_the_embedding_batch_is_its_own():
    run = options("run", "imgs", "-w", "ws", "--batch-size", "64", "--embed-batch-size", "32")
    assert (run.batch_size, run.embed_batch_size) == (64, 32)
    assert run.train_overrides()["batch_size"] == 64
    embed = options("embed", "imgs", "-w", "ws", "--batch-size", "48")  # `curate embed`'s flag, as before
    assert (embed.batch_size, embed.embed_batch_size) == (None, 48)


def test_budget_flags_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "imgs", "-w", "ws", "--minutes", "1", "--epochs", "2"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_options_round_trip_through_their_flags():
    given = options("train", "imgs", "-w", "ws", "--task", "simclr:1", "--task", "rotation:0.5", "--minutes", "2.5",
                    "--snapshot-minutes", "1", "2", "--stop-on-collapse", "--seed", "7", "--resume", "--lr", "0.01")
    again = options("train", "imgs", "-w", "ws", *to_argv(given, RANK_GROUPS))
    assert again == given and given.snapshot_minutes == (1.0, 2.0) and given.task == ("simclr:1", "rotation:0.5")


def test_a_rank_gets_the_training_options_and_not_the_launchers():
    given = options("train", "imgs", "-w", "ws", "--nproc", "2", "--epochs", "1", "--batch-size", "32",
                    "--engine", "local", "--threads", "3")
    argv = worker_argv(given, threads=1)
    assert argv[:7] == ["-m", "curate.train", "imgs", "-w", "ws", "--threads", "1"]
    assert "--nproc" not in argv and "--engine" not in argv and argv.count("--threads") == 1
    rank = from_namespace(RunOptions, build_parser().parse_args(["train", *argv[2:]]))
    assert (rank.epochs, rank.batch_size, rank.nproc) == (1.0, 32, None)
