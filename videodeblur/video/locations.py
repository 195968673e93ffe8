"""What a video's location names: a file, a network URL, standard input or output (``-``), or a named
pipe. Readers, writers and the planners all ask this before they open anything, since each kind is
opened, sought and named in messages its own way."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = ["NETWORK_TIMEOUTS_S", "STDIN", "URL_SCHEMES", "is_named_pipe", "is_stdin", "is_url", "pipe_refusing_resume",
           "redacted", "scheme_not_read", "scheme_not_sent", "unknown_scheme"]

STDIN = "-"  # the input (or output) given as "-": the video piped in (or out)
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
NETWORK_TIMEOUTS_S = (10.0, 30.0)  # open, then each read: a dead server is an error, not a hang
HIDDEN = "***"  # what a URL's password or secret query value is shown as
_SECRET_PARAMETERS = frozenset({"token", "key", "password", "passwd", "pass", "secret", "sig", "signature", "auth",
                                "access_token", "api_key", "apikey", "passphrase"})  # passphrase: SRT's


def is_url(spec: str | Path) -> bool:
    """``scheme://...`` with a scheme FFmpeg reads over the network (a URL, not a file path)."""
    scheme, sep, _ = str(spec).partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES


def redacted(spec: str | Path) -> str:
    """``spec`` as messages, stats and JSON may show it: a URL's password and the values of its query
    parameters named like secrets (``token``, ``key``, ``sig``...) become ``***``, so that a user's logs
    and monitoring do not hold them; so for a URL of a scheme not read here (``ftp://user:pass@...``),
    which an error names as given. Anything else, and a non-URL, is shown as given. Display only:
    what FFmpeg opens is always ``spec`` itself."""
    text = str(spec)
    if not (is_url(text) or unknown_scheme(text)):
        return text
    scheme, _, rest = text.partition("://")
    netloc, path = re.match(r"([^/?#]*)(.*)", rest, re.DOTALL).groups()
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{HIDDEN}@{host}"
    path, hash_, fragment = path.partition("#")
    path, question, query = path.partition("?")
    if question:
        query = "&".join(_hidden_if_secret(pair) for pair in query.split("&"))
    return f"{scheme}://{netloc}{path}{question}{query}{hash_}{fragment}"


def _hidden_if_secret(pair: str) -> str:
    """One ``name=value`` of a query, its value hidden where the name is a secret's."""
    name, equals, _ = pair.partition("=")
    return f"{name}={HIDDEN}" if equals and unquote(name).lower() in _SECRET_PARAMETERS else pair


def unknown_scheme(spec: str | Path | None) -> str | None:
    """The scheme of a ``scheme://...`` that names no stream FFmpeg is asked to use here (``ftp://``,
    ``s3://``), else None: read as a path, it became a folder "ftp:/host" that did not exist."""
    scheme, sep, _ = str(spec or "").partition("://")
    if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) and scheme.lower() not in URL_SCHEMES:
        return scheme
    return None


def scheme_not_read(spec: str | Path | None, *, urls: bool = True) -> str | None:
    """Why ``spec`` cannot be read, where it is a ``scheme://...`` of no stream read here (see
    :func:`unknown_scheme`) and no file has that name; else None. ``urls``: the caller reads stream
    URLs too (else files only). Callers say it after the location, :func:`redacted`: read as a path,
    ``ftp://user:pass@host/x.mp4`` was "not found: ftp:/user:pass@host/x.mp4", the password shown
    and the URL bent into a folder."""
    scheme = unknown_scheme(spec) or (None if urls or not is_url(spec or "") else str(spec).partition("://")[0])
    if scheme is None or os.path.lexists(str(spec)):  # a stream URL where only files are read: not one either
        return None
    if scheme.lower() == "file":  # FFmpeg's own protocol for a local file: the path is what to give
        return f"give the file's path itself ({unquote(urlparse(str(spec)).path) or '/'}), not a file:// URL"
    if not urls:
        return f"{scheme}:// URLs are not opened here; give a file"
    return f"{scheme}:// is not a stream it reads; give a file, or a stream's URL ({', '.join(URL_SCHEMES)})"


def scheme_not_sent(target: str | Path | None) -> str | None:
    """``target`` and why a live recording cannot go there, where it is a ``scheme://...`` of no stream
    it sends to (``ftp://``), its secrets hidden; else None. Asked by the camera command (a usage error)
    and by the live loop's options (the library's callers): as a path it was "output folder
    ftp:/user:pass@host does not exist"."""
    scheme = unknown_scheme(target)
    if scheme is None:
        return None
    return (f"{redacted(target)}: {scheme}:// is not a stream it can send to; record to a file, or to rtmp://, "
            "rtmps://, srt://, udp://, tcp:// or rtsp://")


def is_stdin(spec: str | Path | None) -> bool:
    """``-``: standard input (or output), the Unix way of naming a pipe."""
    return spec is not None and str(spec) == STDIN


def is_named_pipe(spec: str | Path | None) -> bool:
    """A path that is a FIFO (``mkfifo``, or bash's ``<(...)``): a pipe under a name, read once as
    standard input is; opening it again would wait for ever for a writer that has gone."""
    if spec is None or is_stdin(spec) or is_url(spec):
        return False
    try:
        return stat.S_ISFIFO(os.stat(spec).st_mode)
    except (OSError, ValueError):
        return False


def pipe_refusing_resume(*paths: str | Path) -> str | None:
    """Why ``--resume`` cannot run with these locations (None: it can): one is a pipe (``-`` or a
    FIFO), which cannot be read again up to where the interrupted run stopped. The command asks before
    the model loads, the runner again for library callers and pipes found in an input folder."""
    if any(is_stdin(path) or is_named_pipe(path) for path in paths):
        return ("--resume needs the input and the output as files: a pipe cannot be read again up to where the "
                "interrupted run stopped")
    return None
