"""Straight-line Lua for the usual update of each group, generated from its kinds (see :mod:`features.lua`).

The template's window code is generic: it loops over a group's members and dispatches on their kind
strings, and reads and writes cells one ``struct`` call at a time. An update script runs that code for
every group of every event, and Redis's Lua interpreter is the update path's bottleneck, so for the
usual case of an applied event the script instead runs code rendered here, one function per windowed
and lifetime group, with the members' kinds, offsets and formats known at render time: the header and
a record are read with one ``struct.unpack`` each and the field written with one ``struct.pack``; the
running aggregates are locals. Each function does the same arithmetic, in the same order, as the
generic code (``fold``, ``add`` and ``value`` in ``entity.lua``), so the stored bytes and the values are
the same; anything else (an event older than the newest bucket or than E, a read, an event that is not
applied) goes to the generic code.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Cells of two doubles: ``mean`` (sum, n) and ``last`` (event ms, value); the others take one.
WIDE = ("mean", "last")

#: Header doubles of a member (after E and R): its running aggregate; last/time_since_last keep none.
HEADER_WIDTH = {"mean": 2, "last": 0, "time_since_last": 0}


@dataclass(frozen=True)
class Layout:
    """Where a group's members live in its field and in an event's input.

    Cell offsets in a record (after the index, in doubles), input offsets, header positions (1-based,
    E and R first), the record's cell doubles, and the record's and header's ``struct`` formats and sizes.
    """

    off: tuple[int, ...]
    ioff: tuple[int, ...]
    hpos: tuple[int, ...]
    cw: int
    rf: str
    rs: int
    hf: str
    hs: int


def layout(kind: str, kinds: tuple[str, ...]) -> Layout:
    """The layout of a group of ``kind`` (``w`` or ``l``) with members of ``kinds``.

    Examples
    --------
    >>> layout("w", ("count", "mean", "last"))
    Layout(off=(0, 1, 3), ioff=(0, 1, 3), hpos=(3, 4, 6), cw=5, rf='<dddddd', rs=48, hf='<ddddd', hs=40)
    """
    off, ioff, hpos = [], [], []
    cw = iw = 0
    h = 3
    for k in kinds:
        off.append(cw)
        ioff.append(iw)
        hpos.append(h)
        cw += 2 if k in WIDE else 1
        iw += 2 if k == "mean" else 1
        h += HEADER_WIDTH.get(k, 1)
    rf = "<" + ("d" if kind == "w" else "") + "d" * cw
    hf = "<" + "d" * (h - 1)
    return Layout(tuple(off), tuple(ioff), tuple(hpos), cw, rf, 8 * len(rf[1:]), hf, 8 * (h - 1))


def _acc(m: int, k: str) -> list[str]:
    """The Lua locals of member ``m``'s running aggregate (``acc`` in the template)."""
    if k == "mean":
        return [f"s{m}", f"n{m}"]
    if k == "last":
        return [f"x{m}", f"v{m}"]
    return [f"n{m}" if k == "count" else f"s{m}" if k == "sum" else f"x{m}"]


def _cell(m: int, k: str, lay: Layout, prefix: str) -> tuple[str, str]:
    """Names of member ``m``'s cell among the record locals ``prefix1..`` (index first if windowed).

    The second is ``0`` for a one-double cell (``cellat`` in the template).
    """
    base = len(lay.rf) - lay.cw + lay.off[m]
    return f"{prefix}{base}", (f"{prefix}{base + 1}" if k in WIDE else "0")


def _record(lay: Layout, prefix: str) -> str:
    """The locals of one record, as many as its doubles."""
    return ", ".join(f"{prefix}{c}" for c in range(1, len(lay.rf)))


def _fold_in(k: str, a: list[str], c1: str, c2: str) -> list[str]:
    """``fold(k, acc, c1, c2, 1)``."""
    if k in ("count", "sum"):
        return [f"{a[0]} = {a[0]} + {c1}"]
    if k == "mean":
        return [f"{a[0]} = {a[0]} + {c1}", f"{a[1]} = {a[1]} + {c2}"]
    if k == "min":
        return [f"if {a[0]} == nil or {c1} < {a[0]} then {a[0]} = {c1} end"]
    if k == "last":
        return [f"if {a[0]} == nil or {c1} > {a[0]} then {a[0]}, {a[1]} = {c1}, {c2} end"]
    return [f"if {a[0]} == nil or {c1} > {a[0]} then {a[0]} = {c1} end"]  # max, time_since_last


def _reset(k: str, a: list[str]) -> str:
    return ", ".join(a) + " = " + ", ".join(["0" if k in ("count", "sum", "mean") else "nil"] * len(a))


def _value(k: str, a: list[str], target: str) -> list[str]:
    """``target = value(k, acc, t)`` (nil: none)."""
    if k in ("count", "sum", "min", "max"):
        return [f"{target} = {a[0]}"]
    if k == "mean":
        return [f"if {a[1]} > 0 then {target} = {a[0]} / {a[1]} else {target} = nil end"]
    if k == "last":
        return [f"{target} = {a[1]}"]
    return [f"if {a[0]} == nil then {target} = nil else {target} = math.max(0, t - {a[0]}) / 1000 end"]


def _add(k: str, c1: str, c2: str, x1: str, x2: str, out: list[str]) -> list[str]:
    """``out... = add(k, c1, c2, x1, x2, t)``."""
    o = ", ".join(out)
    if k == "count":
        return [f"{o} = ({c1} or 0) + 1"]
    if k == "sum":
        return [f"{o} = ({c1} or 0) + {x1}"]
    if k == "mean":
        return [f"{o} = ({c1} or 0) + {x1}, ({c2} or 0) + {x2}"]
    if k == "min":
        return [f"if {c1} == nil or {x1} < {c1} then {o} = {x1} else {o} = {c1} end"]
    if k == "max":
        return [f"if {c1} == nil or {x1} > {c1} then {o} = {x1} else {o} = {c1} end"]
    if k == "last":
        return [f"if {c1} == nil or t >= {c1} then {o} = t, {x1} else {o} = {c1}, {c2} end"]
    return [f"if {c1} == nil or t > {c1} then {o} = t else {o} = {c1} end"]


def _inputs(kinds: tuple[str, ...]) -> tuple[list[tuple[str, str]], str]:
    """Input locals per member (x1, x2; x2 "nil" unless mean) and the list for one unpack."""
    names, flat = [], []
    for m, k in enumerate(kinds):
        if k == "mean":
            names.append((f"i{m}", f"j{m}"))
            flat += [f"i{m}", f"j{m}"]
        else:
            names.append((f"i{m}", "nil"))
            flat.append(f"i{m}")
    return names, ", ".join(flat)


def windowed(i: int, kinds: tuple[str, ...], out: tuple[int, ...], b: int, nb: int) -> str:
    """Lua function ``GEN[i](text, t, inp, newmax, vals)``: windowed group ``i`` takes an applied event.

    The template's ``windowed`` (load, evict, put, expired, header, pack) unrolled for ``kinds``; an
    out-of-order event goes to the generic ``windowed``.
    """
    lay = layout("w", kinds)
    hs, rs, rec = lay.hs, lay.rs, _record(lay, "r")
    accs = [_acc(m, k) for m, k in enumerate(kinds)]
    extreme = [m for m, k in enumerate(kinds) if k in ("min", "max", "last", "time_since_last")]
    head_locals = [a for m, k in enumerate(kinds) if HEADER_WIDTH.get(k, 1) for a in accs[m]]
    ins, inflat = _inputs(kinds)
    L = [f"GEN[{i}] = function(text, t, inp, newmax, vals)"]
    add = L.append
    add(f"  local hi = floor(t / {b})")
    add(f"  local keep = floor((newmax - LATENESS) / {b}) - {nb}")
    add("  local e, r, n, head = false, 0, 0, false")
    all_acc = [a for acc in accs for a in acc]
    add("  local " + ", ".join(all_acc))
    add("  if text then")
    add("    local e0")
    add(f'    e0, r{"".join(", " + a for a in head_locals)} = sunpack("{lay.hf}", text)')
    add("    if e0 == e0 then e = e0 end")
    add(f"    n = (#text - {hs}) / {rs}")
    add(f'    if n > r then head = sunpack("<d", text, {hs + 1} + (n - 1) * {rs}) end')
    add(f"    if (e and hi - {nb} < e) or (head and hi < head) then")
    add(f"      return windowed(G[{i}], text, t, inp, newmax, vals)")
    add("    end")
    for m in extreme:
        k = kinds[m]
        if k in ("min", "max"):
            add(f"    if x{m} ~= x{m} then x{m} = nil end")
    tail = [m for m in extreme if kinds[m] in ("last", "time_since_last")]
    if tail:
        add("    if n > r then")
        add(f'      local {rec} = sunpack("{lay.rf}", text, {hs + 1} + (n - 1) * {rs})')
        for m in tail:
            c1, c2 = _cell(m, kinds[m], lay, "r")
            add(f"      {_reset(kinds[m], accs[m])}")
            L.extend("      " + s for s in _fold_in(kinds[m], accs[m], c1, c2))
        add("    end")
    add("  else")
    add("    " + "; ".join(_reset(k, accs[m]) for m, k in enumerate(kinds)))
    add("  end")
    add(f'  local {inflat} = sunpack("<{"d" * len(inflat.split(", "))}", inp)')
    # evict(g, text, e, r, n, hi - nb)
    add(f"  local cut = hi - {nb}")
    add("  if not (e and cut <= e) then")
    add("    local j" + "".join(f", ok{m}" for m in extreme) + " = r" + ", true" * len(extreme))
    add("    while j < n do")
    add(f'      local {rec} = sunpack("{lay.rf}", text, {hs + 1} + j * {rs})')
    add("      if r1 > cut then break end")
    for m, k in enumerate(kinds):
        c1, c2 = _cell(m, k, lay, "r")
        a = accs[m]
        if k in ("count", "sum"):
            add(f"      {a[0]} = {a[0]} + -1 * {c1}")
        elif k == "mean":
            add(f"      {a[0]} = {a[0]} + -1 * {c1}")
            add(f"      {a[1]} = {a[1]} + -1 * {c2}")
        else:
            op = ">" if k == "min" else "<"
            add(f"      if ok{m} then ok{m} = {c1} {op} {a[0]} end")
    add("      j = j + 1")
    add("    end")
    add("    if j > r then")
    for m, k in enumerate(kinds):
        cond = "j == n" if m not in extreme else f"not ok{m} or j == n"
        add(f"      if {cond} then")
        add(f"        {_reset(k, accs[m])}")
        if m in extreme:
            add("        for q = j, n - 1 do")
            add(f'          local {rec} = sunpack("{lay.rf}", text, {hs + 1} + q * {rs})')
            c1, c2 = _cell(m, k, lay, "r")
            L.extend("          " + s for s in _fold_in(k, accs[m], c1, c2))
            add("        end")
        add("      end")
    add("    end")
    add("    e, r = cut, j")
    add("  end")
    # put(g, text, replace and n - 1, t, vals)
    add("  local replace = n > r and head == hi")
    cells = [f"p{c}" for c in range(1, lay.cw + 2)]
    add(f"  local {', '.join(cells)}")
    add(f'  if replace then {", ".join(cells)} = sunpack("{lay.rf}", text, {hs + 1} + (n - 1) * {rs}) end')
    newcells = []
    for m, k in enumerate(kinds):
        c1, c2 = _cell(m, k, lay, "p")
        x1, x2 = ins[m]
        a = accs[m]
        o = [f"a{m}"] + ([f"b{m}"] if k in WIDE else [])
        add(f"  local {', '.join(o)}")
        L.extend("  " + s for s in _add(k, c1, c2 if k in WIDE else "nil", x1, x2, o))
        newcells += [o[0]] + ([f"({o[1]} or 0)"] if k in WIDE else [])
        target = f"vals[{out[m] + 1}]"
        if k == "time_since_last":
            L.extend("  " + s for s in _value(k, a, target))
            add(f"  {a[0]} = a{m}")
            continue
        if k == "last":
            add(f"  {a[0]}, {a[1]} = a{m}, b{m}")
        elif k == "count":
            add(f"  {a[0]} = {a[0]} + 1")
        else:
            L.extend("  " + s for s in _fold_in(k, a, x1, x2))
        L.extend("  " + s for s in _value(k, a, target))
    # expired, header, pack
    add("  local first = 0")
    add(f'  while first < r and sunpack("<d", text, {hs + 1} + first * {rs}) <= keep do')
    add("    first = first + 1")
    add("  end")
    add("  local upto = replace and n - 1 or n")
    add(f'  local kept = upto > first and sub(text, {hs + 1} + first * {rs}, {hs} + upto * {rs}) or ""')
    head_vals = []
    for m, k in enumerate(kinds):
        if k in ("count", "sum", "mean"):
            head_vals += accs[m]
        elif k in ("min", "max"):
            head_vals.append(f"({accs[m][0]} or NAN)")
    wf = lay.hf + "c0" + lay.rf[1:]
    add(
        f'  return spack("{wf}", e or NAN, r - first{"".join(", " + v for v in head_vals)}, kept, hi, '
        f"{', '.join(newcells)})"
    )
    add("end")
    return "\n".join(L)


def _life_value(k: str, u: str, w: str, target: str) -> list[str]:
    """``target = value(k, acc, t)`` of an accumulator reset, then folded the cell (u, w) if u is not nil."""
    if k in ("count", "sum"):
        return [f"if {u} == nil then {target} = 0 else {target} = 0 + {u} end"]
    if k == "mean":
        return [
            f"if {u} ~= nil and 0 + {w} > 0 then {target} = (0 + {u}) / (0 + {w})",
            f"else {target} = nil end",
        ]
    if k in ("min", "max"):
        return [f"{target} = {u}"]
    if k == "last":
        return [f"if {u} == nil then {target} = nil else {target} = {w} end"]
    return [f"if {u} == nil then {target} = nil else {target} = math.max(0, t - {u}) / 1000 end"]


def lifetime(i: int, kinds: tuple[str, ...], out: tuple[int, ...]) -> str:
    """Lua function ``GEN[i](text, t, inp, vals)``: the lifetime group ``i`` takes an applied event.

    The template's ``lifetime`` (write, every member) unrolled for ``kinds``: values into vals, the new
    field text or false (unchanged).
    """
    lay = layout("l", kinds)
    ins, inflat = _inputs(kinds)
    L = [f"GEN[{i}] = function(text, t, inp, vals)"]
    add = L.append
    add(f"  local {_record(lay, 'r')}")
    add(f'  if text then {_record(lay, "r")} = sunpack("{lay.rf}", text) end')
    add(f"  local {inflat}")
    add(f'  if inp ~= "" then {inflat} = sunpack("<{"d" * len(inflat.split(", "))}", inp) end')
    add("  local changed = false")
    cells = []
    for m, k in enumerate(kinds):
        c1, c2 = _cell(m, k, lay, "r")
        u, w = f"u{m}", f"w{m}"
        add(f"  local {u}, {w} = {c1}, {c2 if k in WIDE else 'nil'}")
        add(f"  if {u} ~= {u} then {u}, {w} = nil, nil end")
        x1, x2 = ins[m]
        target = f"vals[{out[m] + 1}]"
        add(f"  if {x1} == nil or {x1} ~= {x1} then")
        L.extend("    " + s for s in _life_value(k, u, w, target))
        add("  else")
        if k == "time_since_last":
            L.extend("    " + s for s in _life_value(k, u, w, target))
        o = [f"a{m}"] + ([f"b{m}"] if k in WIDE else [])
        add(f"    local {', '.join(o)}")
        L.extend("    " + s for s in _add(k, u, w, x1, x2, o))
        if k in WIDE:
            add(f"    {u}, {w} = a{m}, b{m}")
        else:
            add(f"    {u} = a{m}")
        if k != "time_since_last":
            L.extend("    " + s for s in _life_value(k, u, w, target))
        add("    changed = true")
        add("  end")
        cells += [f"{u} or NAN"] + ([f"{w} or NAN"] if k in WIDE else [])
    add("  if not changed then return false end")
    add(f'  return spack("{lay.rf}", {", ".join("(" + c + ")" for c in cells)})')
    add("end")
    return "\n".join(L)


#: Most groups whose inputs an update script unpacks into Lua locals (a function has at most 200 locals
#: and 250 registers); an entity of more unpacks each event into a table.
INLINE_GROUPS = 64


def inputs(n: int) -> str:
    """The Lua names of an event's inputs to ``n`` groups: locals, or the table ``ev`` of the whole event.

    Examples
    --------
    >>> inputs(3), inputs(INLINE_GROUPS + 1)
    ('in1, in2, in3', 'ev')
    """
    if n > INLINE_GROUPS:
        return "ev"
    return ", ".join(f"in{i}" for i in range(1, n + 1))


def decode(n: int) -> str:
    """The update loop's Lua statement unpacking one event (``EVENT``) of ``n`` groups at ``p``."""
    if n > INLINE_GROUPS:
        return (
            "local ev = {sunpack(EVENT, blob, p)}\n"
            "    local off, t, wall, fpos, np = ev[1], ev[2], ev[3], ev[4], ev[NG + 5]"
        )
    return f"local off, t, wall, fpos, {inputs(n)}, np = sunpack(EVENT, blob, p)"


def apply(gs: list[tuple[str, tuple[str, ...], tuple[int, ...], int, int]]) -> str:
    """The group functions and ``apply(ent, t, newmax, vals, ev)``, which runs them for an applied event.

    ``apply`` is the template's ``each`` for an applied event, with the groups' calls written out; its
    arguments after ``vals`` are the event's inputs, one per group, or the event (:func:`inputs`).

    ``gs``: each group's kind (``w``, ``l``, ``d``), member kinds, value positions (0-based), bucket
    size and buckets.
    """
    parts: list[str] = []
    inline = inputs(len(gs))
    body = [
        f"local function apply(ent, t, newmax, vals, {inline})",
        "  local got, dirty, zs = ent.got, ent.dirty, ent.z",
    ]
    add = body.append
    for i, (kind, kinds, out, b, nb) in enumerate(gs, start=1):
        add(f"  do -- group {i}")
        add(f"    local text, inp = got[{i + 1}], {f'ev[{4 + i}]' if inline == 'ev' else f'in{i}'}")
        if kind == "w":
            parts.append(windowed(i, kinds, out, b, nb))
            add('    if inp == "" then')
            add("      if text then")
            add(f"        step(G[{i}], text, t, inp, newmax, newmax, vals, nil, zs[{i}])")
            add("      else")
            for m, k in enumerate(kinds):
                add(f"        vals[{out[m] + 1}] = {'0' if k in ('count', 'sum') else 'nil'}")
            add("      end")
            add("    else")
            add(f"      if zs[{i}] then")
            add(f"        text = (splice(G[{i}], text, zs[{i}], floor(t / {b}) - {nb}, true))")
            add("      end")
            add(f"      got[{i + 1}], dirty[{i + 1}] = GEN[{i}](text, t, inp, newmax, vals), true")
            add("    end")
        elif kind == "l":
            parts.append(lifetime(i, kinds, out))
            add(f"    text = GEN[{i}](text, t, inp, vals)")
            add(f"    if text then got[{i + 1}], dirty[{i + 1}] = text, true end")
        else:
            add(f"    local v, new = distinct({b}, {nb}, text, t, inp, newmax, newmax)")
            add(f"    vals[{out[0] + 1}] = v")
            add(f"    if new then got[{i + 1}], dirty[{i + 1}] = new, true end")
        add("  end")
    add("  for i = 1, N do")
    add("    if vals[i] == nil then vals[i] = NAN end")
    add("  end")
    add("end")
    return "\n\n".join(
        [
            "local GEN = {} -- the group functions, by group (locals would be one each)",
            *parts,
            "\n".join(body),
        ]
    )
