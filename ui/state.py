"""Shareable state: mirror a page's key settings into the URL query string and restore them on load.

Usage on a page (widgets take `key=` and no `value=`/`index=`; the default lives here):

    from ui.state import url_state
    s = url_state("slots", {"variant": "sprites", "seed": 0, "index": 3})
    st.selectbox("Variant", ["sprites", "textured"], key=s.key("variant"))
    ...
    s.sync()   # after the widgets: writes the current values to the URL

URL parameters carry the plain names (`?variant=textured&seed=4`); session keys are namespaced by
page (`slots.variant`) so pages never collide. Values are parsed back with the default's type and must be
finite; with `ranges` a value is clamped into its widget's (lo, hi) (above the maximum gives the maximum) or
checked against its allowed values. An unusable value falls back to the default; a toast names what changed.
"""

from __future__ import annotations

import json
import math

import streamlit as st


class BadValue(ValueError):
    """A URL value that cannot be used (unparsable, not finite, of the wrong type or not a choice)."""


def _scalar(raw, default):
    """`raw` (a string, or an element of a parsed JSON list) as the type of `default`; raises BadValue."""
    if isinstance(default, bool):
        if str(raw).lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return str(raw).lower() in ("1", "true", "yes", "on")
        raise BadValue("not a yes/no value")
    if isinstance(default, (int, float)):
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise BadValue("not a number")
        try:
            v = float(raw)
        except (ValueError, OverflowError) as e:
            raise BadValue("not a number") from e
        if not math.isfinite(v):
            raise BadValue("not a finite number")
        if isinstance(default, int):
            if v != int(v):
                raise BadValue("not a whole number")
            return int(v)
        return v
    return raw if isinstance(raw, str) else json.dumps(raw)


def _is_range(bounds) -> bool:
    """(lo, hi): a tuple of two numbers; any other collection lists the allowed values."""
    return isinstance(bounds, tuple) and len(bounds) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)


def _clamp(v, bounds):
    lo, hi = bounds
    return min(hi, max(lo, v))


def _parse(raw: str, default, bounds=None):
    """(value, problem): `raw` parsed with the default's type, checked and clamped into `bounds`, where
    `bounds` is a (lo, hi) tuple (each element of a list value is clamped) or a list of allowed values.
    An unusable value gives (default, why); a clamped one gives (clamped value, why); else (value, None)."""
    try:
        if isinstance(default, (list, tuple)):
            items = json.loads(raw)
            if not isinstance(items, list):
                raise BadValue("not a list")
            if default:  # every entry with the type of the default's first
                items = [_scalar(x, default[0]) for x in items]
            if isinstance(default, tuple) and len(items) != len(default):
                raise BadValue(f"needs {len(default)} values")
            v = type(default)(items)
        elif isinstance(default, dict):
            v = json.loads(raw)
            if not isinstance(v, dict):
                raise BadValue("not a mapping")
        else:
            v = _scalar(raw, default)
    except (BadValue, ValueError, TypeError, RecursionError) as e:  # JSONDecodeError is a ValueError
        return default, str(e) if isinstance(e, BadValue) else "not readable"
    if bounds is None or isinstance(v, dict):
        return v, None
    if not _is_range(bounds):
        allowed = set(map(str, bounds))
        if isinstance(v, (list, tuple)):
            kept = type(v)(x for x in v if str(x) in allowed)
            return kept, None if kept == v else "some entries are not among the choices"
        return (v, None) if str(v) in allowed else (default, "not one of the choices")
    fixed = type(v)(_clamp(x, bounds) for x in v) if isinstance(v, (list, tuple)) else _clamp(v, bounds)
    return fixed, None if fixed == v else f"outside {bounds[0]:g} to {bounds[1]:g}"


def _dump(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(list(v) if isinstance(v, tuple) else v, separators=(",", ":"))
    return str(v)


class UrlState:
    def __init__(self, page: str, defaults: dict, ranges: dict | None = None):
        self.page, self.defaults, self.ranges = page, dict(defaults), dict(ranges or {})
        loaded_flag = f"_urlstate_loaded.{page}"
        first = not st.session_state.get(loaded_flag, False)
        problems = []
        for name, default in self.defaults.items():
            k = self.key(name)
            if first and name in st.query_params:
                raw = st.query_params[name]
                st.session_state[k], why = _parse(raw, default, self.ranges.get(name))
                if why:
                    problems.append(f"`{name}={raw[:40]}` ({why}): using {_dump(st.session_state[k])}")
            elif k not in st.session_state:
                st.session_state[k] = default
        st.session_state[loaded_flag] = True
        if problems:
            st.toast("The link had values this page cannot use; " + "; ".join(problems) + ".", icon=":material/link_off:",
                     duration=20)

    def key(self, name: str) -> str:
        return f"{self.page}.{name}"

    def __getitem__(self, name: str):
        return st.session_state.get(self.key(name), self.defaults[name])

    def __setitem__(self, name: str, value) -> None:
        st.session_state[self.key(name)] = value

    def values(self) -> dict:
        return {n: self[n] for n in self.defaults}

    def sync(self) -> None:
        """Write the current values into the URL (only those that differ from the URL already)."""
        want = {n: _dump(self[n]) for n in self.defaults}
        if any(st.query_params.get(n) != v for n, v in want.items()):
            for n, v in want.items():
                st.query_params[n] = v

    def link(self) -> str:
        """The query string of the current settings (for a 'copy link' box)."""
        from urllib.parse import urlencode

        return "?" + urlencode({n: _dump(self[n]) for n in self.defaults})


def url_state(page: str, defaults: dict, ranges: dict | None = None) -> UrlState:
    """`ranges`: for a name, its widget's (lo, hi) (a list value is clamped element-wise) or its allowed values."""
    return UrlState(page, defaults, ranges)
