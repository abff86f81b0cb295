"""The README and docs/ stay true: every command they show names things that exist.

What is read: fenced ```bash / ```sh / ```shell blocks of README.md and docs/*.md (continuation lines joined,
`# comments` dropped), and inline `code` spans that start like a command (`python -m emojax...`, `emojax ...`,
`python launch/...`, `python benchmarks/...`, `launch/...`, `DRY_RUN=1 ...`). Lines of a block that start with
`--` (fragments listing options) are not commands and are skipped.

What is checked, per command:
- `--config path.py[:variant]`: the file exists and `get_config(variant)` parses (a FileNotFoundError from a
  variant that restores a trained run, e.g. `configs/multimodal.py:data=runs`, counts as parsed: it needs the run,
  not a fix of the docs);
- `--config.x.y=value`: `x.y` is a field of that config;
- `emojax <subcommand>` exists in `emojax/cli.py` and each `--flag` is one its argparse parser defines; the flags
  of `python -m emojax.main` are its absl flags; `python -m emojax.<module>` and `python <script>.py` flags are
  read from their source (argparse `add_argument("--x")` and absl `DEFINE_*("x")`);
- every repository file a command names (configs/, launch/, benchmarks/, emojax/, tests/, docs/) exists.

Placeholders are skipped by rule: a token holding `<`, `>`, `...`, `[`, `]`, `|`, `$` or `*` is not checked (for
`configs/x.py[:...]` the file part still is). Paths outside the repository (runs/..., /data/..., photo.jpg) are
never checked. Run: `--help` of `python -m emojax.main` and of every subcommand, the SLURM launcher's dry run and
`launch/sweep.py --print` as the docs show them. Also: relative links of every page resolve, and every field of
every config is listed in docs/configs.md.
"""

import argparse
import functools
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_FENCES = ("bash", "sh", "shell")
COMMAND_START = re.compile(
  r"^(?:[A-Z_]+=(?:\"[^\"]*\"|\S+)\s+)*(?:\.venv/bin/)?(?:python3?\s+(?:-m\s+emojax|launch/|benchmarks/)|emojax\b|bash\s+launch/|"
  r"launch/\S+\.sh\b|sbatch\b)"
)
PLACEHOLDER = re.compile(r"[<>\[\]|$*]|\.\.\.")
REPO_FILE = re.compile(r"^(?:configs|launch|benchmarks|emojax|tests|docs)/[\w./-]+\.(?:py|sh|sbatch|md)$")


# ------------------------------------------------------------------------------------------------
# Reading the commands
# ------------------------------------------------------------------------------------------------
def strip_comment(line: str) -> str:
  """Drops a trailing `# comment` (a # after whitespace, outside quotes)."""
  quote = None
  for i, char in enumerate(line):
    if quote:
      quote = None if char == quote else quote
    elif char in "'\"":
      quote = char
    elif char == "#" and (i == 0 or line[i - 1].isspace()):
      return line[:i].rstrip()
  return line.rstrip()


def commands_in(text: str, source: str) -> list[tuple[str, str]]:
  """(where, command) for every command of a page."""
  found = []
  lines = text.split("\n")
  fence, pending, start = None, "", 0
  for number, line in enumerate(lines, 1):
    if line.startswith("```"):
      fence = None if fence is not None else line[3:].strip()
      continue
    if fence in SHELL_FENCES:
      code = strip_comment(line).strip()
      if pending:
        code = pending + " " + code
      if code.endswith("\\"):
        pending, start = code[:-1].strip(), start or number
        continue
      pending = ""
      if COMMAND_START.match(code):
        found.append((f"{source}:{start or number}", code))
      start = 0
    elif fence is None:
      for span in re.findall(r"`([^`]+)`", line):
        if COMMAND_START.match(span.strip()):
          found.append((f"{source}:{number}", span.strip()))
  return found


def all_commands() -> list[tuple[str, str]]:
  found = []
  for page in PAGES:
    found += commands_in(page.read_text(), str(page.relative_to(REPO)))
  return found


# ------------------------------------------------------------------------------------------------
# What exists
# ------------------------------------------------------------------------------------------------
class _Captured(Exception):
  pass


@functools.cache
def subcommand_flags(name: str) -> frozenset[str]:
  """The option strings of an `emojax <name>` subcommand, from its own argparse parser."""
  from emojax import cli

  module_name, function_name = cli.SUBCOMMANDS[name][0].split(":")
  function = getattr(importlib.import_module(module_name), function_name)

  def capture(self, args=None, namespace=None):
    raise _Captured(self)

  original = argparse.ArgumentParser.parse_args
  argparse.ArgumentParser.parse_args = capture
  try:
    function([])
  except _Captured as captured:
    return frozenset(captured.args[0]._option_string_actions)
  finally:
    argparse.ArgumentParser.parse_args = original
  raise AssertionError(f"emojax {name}: no argparse parser was reached")


@functools.cache
def source_flags(path: Path) -> frozenset[str]:
  """Flags a script or module defines: argparse option strings and absl flag names (with --no<bool>)."""
  source = path.read_text()
  flags = set(re.findall(r"""add_argument\(\s*(?:"[^"]*",\s*)*"(--[\w-]+)""", source))
  flags |= set(re.findall(r"""add_argument\(\s*"(-[\w])\"""", source))
  for kind, name in re.findall(r"""DEFINE_(\w+)\(\s*"(\w+)\"""", source):
    flags.add(f"--{name}")
    if kind == "bool":
      flags.add(f"--no{name}")
  return frozenset(flags | {"--help", "-h"})


def module_path(module: str) -> Path:
  base = REPO / Path(*module.split("."))
  return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@functools.cache
def load_config(path: str, variant: str | None):
  spec = importlib.util.spec_from_file_location(f"docs_config_{Path(path).stem}", REPO / path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  try:
    return module.get_config(variant)
  except FileNotFoundError:
    return None  # the variant restores a trained run that is not here: its arguments parsed


def has_field(config, dotted: str) -> bool:
  node = config
  for part in dotted.split("."):
    if not hasattr(node, "keys") or part not in node.keys():
      return False
    node = node[part]
  return True


# ------------------------------------------------------------------------------------------------
# The checker
# ------------------------------------------------------------------------------------------------
def check_command(command: str) -> list[str]:
  """What is wrong with one documented command (empty when nothing is)."""
  try:
    tokens = shlex.split(command)
  except ValueError:
    tokens = command.split()
  while tokens and re.match(r"^[A-Z_]+=", tokens[0]):
    tokens.pop(0)
  if not tokens:
    return []
  errors = []
  program, args = tokens[0], tokens[1:]
  known = None  # the flags this program takes; None: not checked
  if program.endswith("python") or program.endswith("python3"):
    if args[:1] == ["-m"] and len(args) > 1:
      module, args = args[1], args[2:]
      if module == "emojax.main":
        program = "emojax"
      else:
        path = module_path(module)
        if not path.is_file():
          return [f"no module {module} ({path.relative_to(REPO)})"]
        known = source_flags(path)
    elif args:
      script, args = args[0], args[1:]
      if not (REPO / script).is_file():
        return [f"no file {script}"]
      known = source_flags(REPO / script)
  elif program in ("bash", "sbatch"):
    args = [a for a in args if not a.startswith("-")]
  if program == "emojax":
    from emojax import cli

    if args and not args[0].startswith("-"):
      if args[0] not in cli.SUBCOMMANDS:
        return [f"no emojax subcommand {args[0]!r} (emojax/cli.py SUBCOMMANDS: {sorted(cli.SUBCOMMANDS)})"]
      known, args = subcommand_flags(args[0]), args[1:]
    else:
      known = source_flags(REPO / "emojax" / "main.py") | {"--helpfull"}
  config, config_path = None, None
  index = 0
  while index < len(args):
    token = args[index]
    index += 1
    if token.startswith("-") and not re.match(r"^-\d", token) and known is not None:
      name, has_value, value = token.partition("=")
      if name == "--config" and not has_value and index < len(args):
        value, has_value = args[index], True
        index += 1
      if name.startswith("--config."):
        field = name[len("--config.") :]
        if config is not None and not PLACEHOLDER.search(field) and not has_field(config, field):
          errors.append(f"{config_path}: no field {field!r} (from {token})")
        continue
      if PLACEHOLDER.search(name):
        continue
      if name not in known:
        errors.append(f"unknown flag {name} (known: {' '.join(sorted(f for f in known if f.startswith('--')))})")
        continue
      if name == "--config" and has_value:
        token = value
      else:
        continue
    # a positional argument, or the value of --config
    file_part = re.split(r"[:\[]", token, maxsplit=1)[0]
    if file_part.startswith("configs/") and file_part.endswith(".py"):
      if not (REPO / file_part).is_file():
        errors.append(f"no config file {file_part}")
        continue
      config_path = file_part
      if PLACEHOLDER.search(token):
        config = None
        continue
      variant = token.split(":", 1)[1] if ":" in token else None
      try:
        config = load_config(file_part, variant)
      except Exception as error:  # noqa: BLE001 - any failure to build the config is the finding
        errors.append(f"{token}: get_config failed: {error}")
        config = None
    elif REPO_FILE.match(token) and not PLACEHOLDER.search(token) and not (REPO / token).exists():
      errors.append(f"no file {token}")
  return errors


COMMANDS = all_commands()


def test_commands_were_found():
  assert len(COMMANDS) > 50, f"only {len(COMMANDS)} commands read from README.md and docs/: is the reader broken?"
  pages = {where.split(":")[0] for where, _ in COMMANDS}
  assert {"README.md", "docs/training.md", "docs/inference.md", "docs/scaling.md"} <= pages


@pytest.mark.parametrize("where,command", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_names_what_exists(where, command):
  assert check_command(command) == [], f"{where}: {command}"


@pytest.mark.parametrize(
  "command,expected",
  [
    ("python -m emojax.main --config configs/face_cnn.py:model=nope --workdir runs/x", "get_config failed"),
    ("python -m emojax.main --config configs/nope.py --workdir runs/x", "no config file"),
    ("python -m emojax.main --config configs/face_cnn.py --workdir runs/x --config.train.nope=1", "no field"),
    ("python -m emojax.main --config configs/text.py --workdir runs/x --modes=eval", "unknown flag --modes"),
    ("emojax predict --model runs/b --faces photo.jpg", "unknown flag --faces"),
    ("emojax frobnicate --model runs/b", "no emojax subcommand"),
    ("python launch/nope.py --root runs/x", "no file"),
    ("python launch/sweep.py launch/sweeps/nope.py --root runs/x", "no file launch/sweeps/nope.py"),
    ("python -m emojax.results runs/x --nope", "unknown flag --nope"),
    ("python -m emojax.nope --x", "no module"),
  ],
)
def test_checker_catches_a_bad_command(command, expected):
  errors = check_command(command)
  assert any(expected in error for error in errors), errors


def test_checker_passes_good_commands_and_skips_placeholders():
  good = [
    "python -m emojax.main --config configs/face_cnn.py:model=residual_attention --workdir runs/x "
    "--config.model.width=0.5 --mode=eval --checkpoint=latest",
    "emojax evaluate --model runs/<run> --data fer2013 --root ../shared/data/fer2013 --split all --json",
    "python -m emojax.baselines --config configs/speech.py[:labels=ekman7] --workdir runs/x --classifier=svm "
    "--all_folds",
    "python -m emojax.main --config <same> --workdir <same> --mode=eval",
  ]
  for command in good:
    assert check_command(command) == [], command


def test_commands_are_read_from_blocks_and_spans():
  text = (
    "Run `python -m emojax.main --config configs/text.py --workdir runs/x` or `make demo`.\n\n"
    "```bash\n# a comment\nemojax predict --model runs/b \\\n    --face a.jpg   # trailing\n"
    "    --config.data.fold=0 | --config.data.split_by=random\n```\n"
    "```text\nemojax not-a-command\n```\n"
  )
  assert [command for _, command in commands_in(text, "x.md")] == [
    "python -m emojax.main --config configs/text.py --workdir runs/x",
    "emojax predict --model runs/b --face a.jpg",
  ]


# ------------------------------------------------------------------------------------------------
# Links and the config reference
# ------------------------------------------------------------------------------------------------
LINKS = [
  (str(page.relative_to(REPO)), target)
  for page in PAGES
  for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", page.read_text(), flags=re.S))
  if not re.match(r"^(https?:|mailto:|#)", target)
]


@pytest.mark.parametrize("page,target", LINKS, ids=[f"{p}->{t}" for p, t in LINKS])
def test_relative_link_resolves(page, target):
  path = (REPO / page).parent / target.split("#")[0]
  assert path.exists(), f"{page}: link to {target} ({path}) does not resolve"


CONFIG_VARIANTS = {
  "configs/face_cnn.py": ["", "model=residual_attention", "model=cnn_bilstm", "model=landmark_gat", "runlocal"],
  "configs/speech.py": ["", "model=conformer", "model=wav2vec2", "model=whisper", "runlocal"],
  "configs/text.py": ["", "lexicon", "runlocal"],
  "configs/fusion.py": ["", "method=concat", "method=confidence", "data=exports,protocol=crossfit"],
  "configs/multimodal.py": ["", "fusion=concat", "runlocal"],
  "configs/aligned.py": ["set=ravdess_av", "set=mosi", "set=mosi,method=context", "set=ravdess_av,encoder=face"],
}


def flat_fields(config, prefix=""):
  for key in config.keys():
    value = config[key]
    if hasattr(value, "keys"):
      yield from flat_fields(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


@pytest.mark.parametrize("path", sorted(CONFIG_VARIANTS))
def test_configs_md_lists_every_field(path):
  """docs/configs.md names each field in backticks (shared blocks once, a config's own fields in its table)."""
  listed = set(re.findall(r"`([\w.]+)`", (REPO / "docs" / "configs.md").read_text()))
  missing = set()
  for variant in CONFIG_VARIANTS[path]:
    config = load_config(path, variant or None)
    assert config is not None, f"{path}:{variant} needs a trained run; probe another variant"
    for field in flat_fields(config):
      if field not in listed and not (field.startswith("speech_to_text.") and field.split(".")[1] in listed):
        missing.add(field)
  assert not missing, f"docs/configs.md does not list these fields of {path}: {sorted(missing)}"


# ------------------------------------------------------------------------------------------------
# The cheap commands, run
# ------------------------------------------------------------------------------------------------
def run(command: list[str], env=None, timeout=120) -> subprocess.CompletedProcess:
  environment = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
  return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_help_of_main_and_every_subcommand():
  from emojax import cli

  script = (
    "import sys, contextlib, io\n"
    "from emojax import cli\n"
    "for name in sorted(cli.SUBCOMMANDS):\n"
    "  out = io.StringIO()\n"
    "  with contextlib.redirect_stdout(out):\n"
    "    try:\n"
    "      cli.dispatch(['emojax', name, '--help'])\n"
    "    except SystemExit as e:\n"
    "      assert e.code == 0, (name, e.code)\n"
    "  assert 'usage: emojax ' + name in out.getvalue(), (name, out.getvalue()[:200])\n"
    "  print('ok', name)\n"
  )
  result = run([sys.executable, "-c", script])
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.count("ok ") == len(cli.SUBCOMMANDS)
  result = run([sys.executable, "-m", "emojax.main", "--help"])
  # absl's --help exits 1 after printing the flags.
  assert result.returncode in (0, 1) and "--workdir" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def documented(pattern: str) -> str:
  matches = [command for _, command in COMMANDS if re.search(pattern, command)]
  assert matches, f"the docs no longer show a command matching {pattern!r}"
  return matches[0]


def test_documented_dry_runs_run():
  slurm = shlex.split(documented(r"^DRY_RUN=1 .*launch/slurm\.sbatch"))
  env = {}
  while "=" in slurm[0]:
    key, _, value = slurm.pop(0).partition("=")
    env[key] = value
  result = run(slurm, env=env)
  assert result.returncode == 0 and "srun" in result.stdout, result.stdout + result.stderr
  sweep = shlex.split(documented(r"launch/sweep\.py \S+ --root \S+ --print\b"))
  result = run([sys.executable, *sweep[1:]])
  assert result.returncode == 0 and "emojax.main" in result.stdout, result.stdout + result.stderr
