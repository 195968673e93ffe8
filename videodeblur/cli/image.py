"""``videodeblur image INPUT... -o OUTPUT``: deblur image files (PNG, JPEG, TIFF, WebP, AVIF, BMP) or folders of them."""
from __future__ import annotations

import click

from videodeblur.cli._common import device_option, model_option, precision_option, tile_option, warn
from videodeblur.paths import new_folders_removed_if_empty

__all__ = ["image"]


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())  # a str: "" stays "", not Path's "."
@click.option("-o", "--output", default=None, type=click.Path(),  # a str: a trailing slash says "a folder"
              help="Output file (one input), or folder (several inputs, a folder, or a path with no extension). "
                   "Default: beside each input as NAME-deblurred.EXT (a folder's into FOLDER-deblurred/).")
@model_option()
@device_option
@precision_option
@tile_option("Process in overlapping tiles of this many pixels [default: whole images, or tiles sized to fit when whole ones would need more than half the free memory].")
@new_folders_removed_if_empty()  # planning makes output folders; a run that writes nothing leaves none
def image(inputs: tuple[str, ...], output: str | None, model: str | None, device: str, precision: str,
          tile: int | None) -> None:
    """Deblur images (PNG, JPEG, TIFF, WebP, AVIF, BMP): one file to one, or several / a folder to a folder.

    Colour, greyscale (with alpha too), size, dpi and metadata (EXIF and the colour profile into any
    JPEG, PNG, TIFF, WebP or AVIF output, EXIF's orientation upright; comments JPEG to JPEG, PNG to
    PNG) are kept; 16-bit PNGs and TIFFs stay 16-bit; alpha
    is kept in PNG, TIFF, WebP and AVIF outputs. What an output format cannot hold (alpha in JPEG or
    BMP, 16 bits in JPEG, WebP, AVIF or BMP, EXIF in BMP) is left out with a warning.
    Prints each written path.
    A folder is read one level deep (images in its sub-folders are counted in a warning).
    An unreadable file among several is named and skipped; the others are written, and the exit code is 1.

    \b
    Examples:
      videodeblur image blurred.jpg -o sharp.jpg
      videodeblur image shots/ -o sharp/ --model lprn
    """
    from videodeblur.errors import UnreadableInputError
    from videodeblur.images import ImageJob, deblur_planned, plan_images

    jobs = plan_images(inputs, output, warn=warn)  # path mistakes fail here, in milliseconds, before torch loads
    from videodeblur.pipeline import Engine, EngineOptions

    engine = Engine.from_name(model, EngineOptions(device=device, precision=precision, batch_size=1, tile=tile))
    unreadable: list[ImageJob] = []

    def skip(job: ImageJob, err: UnreadableInputError) -> None:
        if len(jobs) == 1:
            raise err
        unreadable.append(job)  # one bad file in a folder does not cost the others their turn
        click.echo(f"videodeblur: error: {err}", err=True)

    for written in deblur_planned(jobs, engine, warn=warn, on_error=skip):
        click.echo(written)
    if engine.auto_tile_note:
        click.echo(f"videodeblur: note: {engine.auto_tile_note}", err=True)
    if unreadable:
        raise UnreadableInputError(f"{len(unreadable)} of {len(jobs)} images could not be read (named above); "
                                   "the others were written")
