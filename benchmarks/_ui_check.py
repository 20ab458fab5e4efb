"""Draw the add-on's panels and menu entries headlessly and check every name they use against
the running Blender's own RNA: properties, operators (and the operator properties set on
them), icons, layout functions and attributes.

Background Blender has no window, so a panel's ``draw`` never runs in a test; a renamed
property, a typo in an operator id or an icon an older Blender lacks would only show up as an
error in a user's console and a half-drawn panel. ``draw_all`` calls every registered
``IMAGE2LEGO_PT_*`` panel (``poll`` first, as Blender does) and every menu function the add-on
appended, with a recording layout that validates each call. Used by
``benchmarks/_compat_child.py`` (each supported Blender) and ``tests/test_blender_ui_draw.py``.
Imports nothing from the add-on, so it works on an installed extension.
"""

from __future__ import annotations

import bpy

#: the menus the add-on appends to (operators/model.py _MENUS)
MENUS = ("TOPBAR_MT_file_import", "TOPBAR_MT_file_export", "VIEW3D_MT_object")
#: longest label the sidebar shows whole at its default width (about 40-48 characters;
#: Blender cuts longer ones with "…" and never wraps a label): longer ones are listed in
#: ``Report.long_labels``
LONG_LABEL = 48
#: the same for the add-on's preferences (the Preferences window is about three times wider)
LONG_PREFS_LABEL = 120


def _enum_keys(fn: str, param: str) -> set[str]:
    return set(bpy.types.UILayout.bl_rna.functions[fn].parameters[param].enum_items.keys())


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.calls = 0
        self.long_labels: list[str] = []
        #: every text the draws put on screen (labels, button and property texts)
        self.texts: list[str] = []
        self.icons = _enum_keys("label", "icon")
        self.functions = set(bpy.types.UILayout.bl_rna.functions.keys())
        self.attributes = set(bpy.types.UILayout.bl_rna.properties.keys())

    def icon(self, where: str, icon) -> None:
        if icon not in (None, "", "NONE") and icon not in self.icons:
            self.problems.append(f"{where}: no icon {icon!r} in this Blender")


class _OpProps:
    """What ``layout.operator()`` returns: setting a property it lacks is a problem."""

    def __init__(self, report: Report, where: str, idname: str, rna) -> None:
        object.__setattr__(self, "_r", (report, where, idname, rna))

    def __setattr__(self, name, value) -> None:
        report, where, idname, rna = self._r
        if rna is not None and name not in rna.properties:
            report.problems.append(f"{where}: operator {idname} has no property {name!r}")


def _operator_rna(idname: str):
    """The operator's properties' RNA (Python and built-in operators), or ``None``."""
    mod, _, name = idname.partition(".")
    try:
        return getattr(getattr(bpy.ops, mod), name).get_rna_type()
    except (AttributeError, KeyError, RuntimeError):
        return None


class CheckLayout:
    """A stand-in for ``bpy.types.UILayout`` that checks each call against the real one."""

    def __init__(self, report: Report, where: str, max_label: int = LONG_LABEL) -> None:
        object.__setattr__(self, "_report", report)
        object.__setattr__(self, "_where", where)
        object.__setattr__(self, "_max_label", max_label)

    def __setattr__(self, name, value) -> None:
        if name not in self._report.attributes:
            self._report.problems.append(f"{self._where}: UILayout has no attribute {name!r}")

    def _sub(self, *args, **kwargs) -> CheckLayout:
        self._report.calls += 1
        return CheckLayout(self._report, self._where, self._max_label)

    row = column = box = split = column_flow = grid_flow = _sub

    def label(self, text="", icon="NONE", **kwargs) -> None:
        self._report.calls += 1
        self._report.icon(self._where, icon)
        self._report.texts.append(text)
        if len(text) > self._max_label:
            self._report.long_labels.append(f"{self._where}: {text}")

    def prop(self, data, property, text=None, icon="NONE", **kwargs) -> None:
        self._report.calls += 1
        self._report.texts += [text] if text else []
        self._report.icon(self._where, icon)
        if data is None or property not in data.bl_rna.properties:
            owner = type(data).__name__
            self._report.problems.append(f"{self._where}: {owner} has no property {property!r}")

    def operator(self, idname, text=None, icon="NONE", **kwargs) -> _OpProps:
        self._report.calls += 1
        self._report.texts += [text] if text else []
        self._report.icon(self._where, icon)
        rna = _operator_rna(idname)
        if rna is None:
            self._report.problems.append(f"{self._where}: no operator {idname!r}")
        return _OpProps(self._report, self._where, idname, rna)

    def menu(self, menu, text=None, icon="NONE", **kwargs) -> None:
        self._report.calls += 1
        self._report.icon(self._where, icon)
        if not hasattr(bpy.types, menu):
            self._report.problems.append(f"{self._where}: no menu {menu!r}")

    def template_icon(self, icon_value=0, scale=1.0) -> None:
        self._report.calls += 1

    def separator(self, **kwargs) -> None:
        self._report.calls += 1

    def __getattr__(self, name):
        report, where, max_label = self._report, self._where, self._max_label
        if name not in report.functions:
            report.problems.append(f"{where}: UILayout has no function {name!r}")

        def call(*args, **kwargs):
            report.calls += 1
            return CheckLayout(report, where, max_label)

        return call


class _Self:
    """The ``self`` a panel, menu or preferences ``draw`` gets: ``layout`` ours, anything else
    read from ``real`` (the add-on's preferences)."""

    def __init__(self, layout: CheckLayout, real=None) -> None:
        self.layout = layout
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)


def panels(prefix: str = "IMAGE2LEGO_PT") -> list[type]:
    found, todo = [], list(bpy.types.Panel.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if getattr(cls, "bl_idname", "").startswith(prefix) and cls.is_registered:
            found.append(cls)
    return sorted(found, key=lambda c: c.bl_idname)


def menu_functions(module_part: str = "image2lego") -> list[tuple[str, object]]:
    out = []
    for menu in MENUS:
        draw = getattr(getattr(bpy.types, menu, None), "draw", None)
        for fn in getattr(draw, "_draw_funcs", []):
            if module_part in getattr(fn, "__module__", ""):
                out.append((menu, fn))
    return out


def draw_all(context=None) -> Report:
    """Poll and draw every panel, draw every appended menu function; the report's
    ``problems`` is empty when every name was found."""
    context = context or bpy.context
    rep = Report()
    for cls in panels():
        where = cls.bl_idname
        try:
            if hasattr(cls, "poll") and not cls.poll(context):
                continue
            if hasattr(cls, "draw_header"):
                cls.draw_header(_Self(CheckLayout(rep, where + ".header")), context)
            cls.draw(_Self(CheckLayout(rep, where)), context)
        except Exception as exc:  # noqa: BLE001 - what the user's console would show
            rep.problems.append(f"{where}: {type(exc).__name__}: {exc}")
    for menu, fn in menu_functions():
        try:
            fn(_Self(CheckLayout(rep, menu)), context)
        except Exception as exc:  # noqa: BLE001
            rep.problems.append(f"{menu}: {type(exc).__name__}: {exc}")
    for key, addon in context.preferences.addons.items():
        prefs = addon.preferences
        if "image2lego" in key and prefs is not None and hasattr(type(prefs), "draw"):
            try:
                layout = CheckLayout(rep, "preferences", LONG_PREFS_LABEL)
                type(prefs).draw(_Self(layout, prefs), context)
            except Exception as exc:  # noqa: BLE001
                rep.problems.append(f"preferences: {type(exc).__name__}: {exc}")
    rep.n_panels = len(panels())  # type: ignore[attr-defined]
    rep.n_menus = len(menu_functions())  # type: ignore[attr-defined]
    return rep
