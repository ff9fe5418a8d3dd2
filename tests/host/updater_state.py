"""Helpers shared by the host tests of the updater: what the device's updater holds, read back
as integers, and the model started as the device's updater was (``Device.reset``)."""

from __future__ import annotations

from tiersolve.designs import regmap


def head_model(device):
    """The IncrementalUpdaterModel started as the device's updater was by ``reset(lam)``."""
    from tiersolve.gen.qr_model import IncrementalUpdaterModel

    head = device.head
    return IncrementalUpdaterModel(head.config, head.n, head.k, lam_sqrt=head.lam_sqrt)


def device_ints(device, select, columns):
    """The updater's stored integers of R (``columns = n``) or Z (``columns = k``)."""
    head = device.head
    _, values = device.updater_command(regmap.UpdaterOp.READ, head.n, head.k, select=select,
                                       outputs=head.n * columns)
    return values.reshape(head.n, columns)


def record_updater_ops(device, *keys) -> list:
    """Make ``device`` record the op of every updater command it sends (in the returned list,
    which fills as the commands go); with ``keys``, ``(op, *those keyword arguments)``
    (None where not given). ``del device.updater_command`` undoes it."""
    ops = []
    command = device.updater_command

    def spy(op, *args, **kwargs):
        ops.append((op, *(kwargs.get(key) for key in keys)) if keys else op)
        return command(op, *args, **kwargs)

    device.updater_command = spy
    return ops
