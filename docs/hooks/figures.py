"""MkDocs hook: the committed figures of results/figures/ become site files under figures/, so the
pages show the measured figures themselves (nothing is copied into docs/)."""

from pathlib import Path

from mkdocs.structure.files import File


def on_files(files, config):
    figures = Path(config["config_file_path"]).parent / "results" / "figures"
    for png in sorted(figures.glob("*.png")):
        files.append(File.generated(config, f"figures/{png.name}", abs_src_path=str(png)))
    return files
