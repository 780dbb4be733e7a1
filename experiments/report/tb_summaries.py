"""TensorBoard records beyond scalars and text: HPARAMS, images, and CPU energy from RAPL.

HPARAMS are written as torch.utils.tensorboard's `hparams()` writes them (the hparams
plugin's protobufs, no TensorFlow): an experiment record naming the hparams and the metric
tags, a session-start record with this run's values, a session-end record with its status.
Runs under one `tensorboard --logdir` then compare in one table.
"""
from __future__ import annotations

import glob
import io
import os
from typing import Any

HPARAM_METRICS = ("final/return", "final/env_steps_per_s", "final/solved", "final/wall_s")
"""Scalar tags the HPARAMS table shows as metric columns (their last value)."""


def _plugin_value(tag: str, **plugin_data: Any) -> Any:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = plugin_data_pb2.HParamsPluginData(version=0, **plugin_data).SerializeToString()
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="hparams", content=content))
    return summary_pb2.Summary.Value(tag=tag, metadata=metadata)


def hparams_start(hparams: dict[str, str | float | bool]) -> list[Any]:
    """Summary values of the experiment and the session start (hparams: name -> value)."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    infos, start = [], plugin_data_pb2.SessionStartInfo()
    for name, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[name].bool_value, kind = value, "DATA_TYPE_BOOL"
        elif isinstance(value, (int, float)):
            start.hparams[name].number_value, kind = float(value), "DATA_TYPE_FLOAT64"
        else:
            start.hparams[name].string_value, kind = str(value), "DATA_TYPE_STRING"
        infos.append(api_pb2.HParamInfo(name=name, type=api_pb2.DataType.Value(kind)))
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in HPARAM_METRICS]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
    return [_plugin_value("_hparams_/experiment", experiment=experiment),
            _plugin_value("_hparams_/session_start_info", session_start_info=start)]


def hparams_end(succeeded: bool) -> Any:
    """Summary value of the session end (crashed runs end STATUS_FAILURE)."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    status = api_pb2.Status.Value("STATUS_SUCCESS" if succeeded else "STATUS_FAILURE")
    return _plugin_value("_hparams_/session_end_info",
                         session_end_info=plugin_data_pb2.SessionEndInfo(status=status))


def custom_scalars_value(layout: dict[str, dict[str, list[str]]]) -> Any:
    """Summary value of a Custom Scalars layout (category -> chart -> tag regexes), as
    torch.utils.tensorboard's add_custom_scalars writes it."""
    from tensorboard.compat.proto import summary_pb2, tensor_pb2
    from tensorboard.plugins.custom_scalar import layout_pb2

    categories = [layout_pb2.Category(title=title, chart=[
        layout_pb2.Chart(title=chart, multiline=layout_pb2.MultilineChartContent(tag=tags))
        for chart, tags in charts.items()]) for title, charts in layout.items()]
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="custom_scalars"))
    tensor = tensor_pb2.TensorProto(dtype="DT_STRING",
                                    string_val=[layout_pb2.Layout(category=categories).SerializeToString()])
    return summary_pb2.Summary.Value(tag="custom_scalars__config__", tensor=tensor, metadata=metadata)


def image_value(tag: str, rgb: Any) -> Any:
    """Summary value of an RGB image (uint8 array [height, width, 3]) as PNG."""
    from PIL import Image
    from tensorboard.compat.proto import summary_pb2

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    image = summary_pb2.Summary.Image(height=rgb.shape[0], width=rgb.shape[1], colorspace=3,
                                      encoded_image_string=buffer.getvalue())
    return summary_pb2.Summary.Value(tag=tag, image=image)


class CpuEnergy:
    """CPU package energy from RAPL (/sys/class/powercap/intel-rapl:N/energy_uj, also on AMD).

    RAPL counts per package, so the figure covers every process on the socket, not only this
    run's: on a shared machine it is an upper bound. `reason` says why it is unavailable.
    """

    ROOT = "/sys/class/powercap"

    def __init__(self) -> None:
        self.reason: str | None = None
        self._files, self._max = [], []
        for domain in sorted(glob.glob(os.path.join(self.ROOT, "intel-rapl:[0-9]*"))):
            if domain.count(":") != 1:  # sub-domains (core, dram) are inside the package figure
                continue
            self._files.append(os.path.join(domain, "energy_uj"))
            self._max.append(self._read(os.path.join(domain, "max_energy_range_uj"), 2**64))
        if not self._files:
            self.reason = f"no RAPL package domain under {self.ROOT}"
            return
        try:
            self._last = [self._read(path) for path in self._files]
        except OSError as err:
            self.reason = f"{self._files[0]} is not readable ({err.strerror}; root only on most kernels)"

    @staticmethod
    def _read(path: str, default: int | None = None) -> int:
        try:
            with open(path, encoding="ascii") as stream:
                return int(stream.read())
        except OSError:
            if default is None:
                raise
            return default

    def joules_since_last(self) -> float | None:
        """Joules used by the packages since the last call (None when unavailable)."""
        if self.reason:
            return None
        now = [self._read(path) for path in self._files]
        delta = sum((new - old) % wrap for new, old, wrap in zip(now, self._last, self._max))
        self._last = now
        return delta / 1e6
