"""``manage.py blogimages_comfyui start|stop|status``: the local ComfyUI, from the shell."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from blogimages import local_comfyui
from blogimages.management.base import BlogImagesCommand

# LSB init-script convention, which monitoring scripts already understand.
EXIT_NOT_RUNNING = 3


class Command(BlogImagesCommand):
    help = (
        "Start, stop or show the local ComfyUI started by BLOGIMAGES_COMFYUI_START_COMMAND (run in "
        "BLOGIMAGES_COMFYUI_WORKDIR); the status page shows its state, this command alone starts and stops it. "
        "Its pidfile and log live in <tempdir>/blogimages-comfyui-<uid>/. Exit status: 0 done (status: "
        "running), 1 it failed to start or stop, 2 not configured or bad arguments, 3 (status only) not running."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=("start", "stop", "status"), help="What to do.")
        parser.add_argument(
            "--state-dir",
            metavar="DIR",
            help=f"Folder for the pidfile and log (default {local_comfyui.default_state_dir()}).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=2.0,
            metavar="SECONDS",
            help="start: how long to watch for an immediate exit before reporting success (default 2).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=15.0,
            metavar="SECONDS",
            help="stop: how long to wait after SIGTERM before SIGKILL (default 15).",
        )
        parser.add_argument(
            "--lines", type=int, default=0, metavar="N", help="status: also print the last N lines of the log."
        )
        parser.add_argument("--format", choices=("text", "json"), default="text", help="Output format (default text).")

    def handle(self, *args: Any, **options: Any) -> None:
        action, state_dir = options["action"], options["state_dir"]
        try:
            if action == "start":
                info = local_comfyui.start(state_dir=state_dir, wait=max(0.0, options["wait"]))
            elif action == "stop":
                info = local_comfyui.stop(state_dir=state_dir, timeout=max(0.0, options["timeout"]))
            else:
                info = local_comfyui.status(state_dir=state_dir)
        except local_comfyui.NotConfigured as exc:
            raise CommandError(str(exc), returncode=2) from exc
        except local_comfyui.LocalComfyUIError as exc:
            raise CommandError(str(exc), returncode=1) from exc
        if options["format"] == "json":
            self.stdout.write(json.dumps(info.as_dict()))
        else:
            style = self.style.SUCCESS if info.running or action == "stop" else self.style.WARNING
            self.stdout.write(style(info.detail))
            if info.command:
                self.stdout.write(f"  command: {info.command}")
            if info.workdir:
                self.stdout.write(f"  folder:  {info.workdir}")
            self.stdout.write(f"  log:     {info.log_path}")
            if options["lines"] > 0:
                tail = local_comfyui.log_tail(state_dir=state_dir, lines=options["lines"])
                self.stdout.write(tail or "(the log is empty)")
        if action == "status" and not info.running:
            raise CommandError("ComfyUI is not running.", returncode=EXIT_NOT_RUNNING)
