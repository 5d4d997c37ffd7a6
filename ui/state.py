"""Shareable state: mirror a page's key settings into the URL query string and restore them on load.

Usage on a page (widgets take `key=` and no `value=`/`index=`; the default lives here):

    from ui.state import url_state
    s = url_state("slots", {"variant": "sprites", "seed": 0, "index": 3})
    st.selectbox("Variant", ["sprites", "textured"], key=s.key("variant"))
    ...
    s.sync()   # after the widgets: writes the current values to the URL

URL parameters carry the plain names (`?variant=textured&seed=4`); session keys are namespaced by
page (`slots.variant`) so pages never collide. Values are parsed back with the default's type;
a malformed value falls back to the default.
"""

from __future__ import annotations

import json

import streamlit as st


def _parse(raw: str, default):
    try:
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(float(raw))
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, (list, tuple, dict)):
            v = json.loads(raw)
            return type(default)(v) if isinstance(default, (list, tuple)) else v
        return raw
    except (ValueError, TypeError, json.JSONDecodeError):
        return default


def _dump(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(list(v) if isinstance(v, tuple) else v, separators=(",", ":"))
    return str(v)


class UrlState:
    def __init__(self, page: str, defaults: dict):
        self.page, self.defaults = page, dict(defaults)
        loaded_flag = f"_urlstate_loaded.{page}"
        first = not st.session_state.get(loaded_flag, False)
        for name, default in self.defaults.items():
            k = self.key(name)
            if first and name in st.query_params:
                st.session_state[k] = _parse(st.query_params[name], default)
            elif k not in st.session_state:
                st.session_state[k] = default
        st.session_state[loaded_flag] = True

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


def url_state(page: str, defaults: dict) -> UrlState:
    return UrlState(page, defaults)
