"""
Checkpoints that survive a crash at any moment and load without unpickling code.

A checkpoint is a dict of tensors and plain data (model_args, config, counters, RNG states), so
`torch.load(weights_only=True)` reads it. Saving writes a temporary file, fsyncs it and renames it
over the old one: the previous good checkpoint is intact until the new one is complete.
"""

import os
import zipfile

import torch


def save_checkpoint(obj: dict, path: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never half
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str, need: tuple[str, ...] = ()) -> dict:
    """Read a checkpoint or stop with one line saying what is wrong with the file. Every checkpoint
    has model, model_args and iter_num; `need` names further keys (a resume needs the optimizer and RNGs)."""
    if not os.path.isfile(path):
        raise SystemExit(f"checkpoint '{path}' does not exist; train first (python train.py config/...) "
                         "or pass --out_dir of a finished run")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one has no central directory
        raise SystemExit(f"checkpoint '{path}' is truncated or corrupt (not a complete torch zip archive); "
                         "delete it and resume from an older copy, or train again")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SystemExit(f"checkpoint '{path}' is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                         "it is corrupt or not a nanoRINS checkpoint")
    missing = {"model", "model_args", "iter_num", *need} - set(ckpt) if isinstance(ckpt, dict) else {"model"}
    if missing:
        raise SystemExit(f"checkpoint '{path}' lacks {', '.join(sorted(missing))}; "
                         "it is not a complete nanoRINS checkpoint")
    return ckpt


def load_model_state(model: torch.nn.Module, state: dict, path: str) -> None:
    """Load weights, turning a shape or key mismatch into one line that names the first difference."""
    own = model.state_dict()
    extra, missing = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    if extra or missing:
        raise SystemExit(f"checkpoint '{path}' does not fit this model: "
                         + (f"unexpected tensor {extra[0]}" if extra else f"missing tensor {missing[0]}")
                         + f" ({len(extra)} unexpected, {len(missing)} missing); "
                         "build the model from the checkpoint's model_args")
    for k, v in state.items():
        if v.shape != own[k].shape:
            raise SystemExit(f"checkpoint '{path}' does not fit this model: {k} has shape {tuple(v.shape)}, "
                             f"the model expects {tuple(own[k].shape)}")
    model.load_state_dict(state)
