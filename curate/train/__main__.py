"""One rank of a DDP training: `torchrun --nproc-per-node N -m curate.train IMAGES -w WS [curate train options]`
(what `curate train --nproc N` runs; see curate.train.launch)."""
import sys

from curate.cli import main

sys.exit(main(["train", "--distributed-worker", *sys.argv[1:]]))
