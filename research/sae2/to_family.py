"""SAE-2's single-rate run (train_top.py) as a weights folder of the package's
sae2 family (sae.models.sae2), so that the per-layer scripts, the codec and
every --weights consumer take it from there.

    python research/sae2/to_family.py --run checkpoints/sae2/top \
        --averaged --out checkpoints/sae2-family [--layers 4]

The run's five objects are the sae2 base's checkpoint objects under the same
names, so they are restored as they are.  The folder gets config.json (the
paper preset of sae2), the base's weights and a state.json with the run's
step.  --layers N also writes layers 1..N-1 as the model starts them
(sae.models.sae2: the base's synthesis, untrained for their steps), so that
a stream of N layers codes and decodes before the nested phase; train
those layers further with train_elK.py --from-weights.
"""

import argparse
import json
import pathlib
import sys

import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--run", required=True, help="train_top.py's --out")
  p.add_argument("--averaged", action="store_true",
                 help="the run's moving average (averaged/), not its last step")
  p.add_argument("--out", required=True)
  p.add_argument("--layers", type=int, default=1, choices=(1, 2, 3, 4))
  args = p.parse_args(argv)
  from sae import checkpoints
  from sae.config import ModelConfig
  from sae.models import families

  out = pathlib.Path(args.out)
  if out.exists() and any(out.iterdir()):
    print(f"error: {out} is not empty", file=sys.stderr)
    return 2
  run = pathlib.Path(args.run)
  source = run / ("averaged" if args.averaged else "weights") / "ckpt"
  rows = [line.split(",") for line in (run / "log.csv").read_text().split()]
  step = int(rows[-1][0]) if len(rows) > 1 else 0
  layers = families.get("sae2").preset("paper").layers
  config = ModelConfig(layers[:args.layers], "mse", "paper", "sae2")
  model = families.build_model(ModelConfig(layers, "mse", "paper", "sae2"))
  tf.train.Checkpoint(**model.base.checkpoint_objects()).read(
      str(source)).assert_existing_objects_matched().expect_partial()
  checkpoints.write_config(out, config)
  checkpoints.save_weights(model.base, out, 0)
  checkpoints.write_state(out, 0, {
      "steps": step, "finished": True,
      "source": f"research/sae2/train_top.py run {run.name}, "
                f"{'moving average' if args.averaged else 'last step'} "
                f"near step {step}"})
  for k in range(1, args.layers):
    model.start_layer(k)
    checkpoints.save_weights(model.codecs[k], out, k)
    checkpoints.write_state(out, k, {"steps": 0, "finished": False,
                                     "source": "the base's synthesis"})
  print(json.dumps({"folder": str(out), "layers": args.layers, "step": step}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
