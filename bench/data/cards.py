"""Dataset cards: one TOML file per dataset (``<key>.toml``: the seven seed cards in ``bench/cards/``, a
user's own in the data root, which is searched first), read into a frozen
:class:`DatasetCard`.

A card says what the dataset is (title, modality, citation, licence), its classes in a fixed order
with the seed paper's counts, the positive class of a binary task, where to obtain images and masks,
the raw layout, how the reference masks are defined, how ``bench prepare --raw`` converts it
(``[convert]``) and, for the seven seed datasets, what its synthetic phantom looks like
(``[phantom]``). Adding a user dataset = writing a card; no code change.

Unknown keys and wrong types are errors naming the key and the file (``bench.config.from_dict``).
Phantoms are keyed ``synthetic-<key>`` and use the card of ``<key>``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.config import ConfigError, from_dict, read_toml
from bench.data.paths import card_dirs
from bench.registry import Registry

SYNTHETIC_PREFIX = "synthetic-"
CONFOUNDER_SEP = "+"  # synthetic-<key>+<cue>[@<Class>]@<p>: a phantom with a confounder (shortcut suite)
MASK_KINDS = ("reference", "derived", "none")


class CardError(ConfigError):
    """A card is wrong or missing; the message names the file and the key."""


@dataclass(frozen=True)
class ConvertSection:
    """How ``bench prepare KEY --raw DIR`` turns the public layout into the on-disk format."""

    converter: str = "image_folder"  # a name in bench.data.converters.CONVERTERS
    # source class code or folder name -> class name of the card; sources not listed are dropped
    # (and the converter says how many); empty = folder names must equal the class names
    class_map: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # converter-specific defaults


@dataclass(frozen=True)
class PhantomSection:
    """What the synthetic stand-in looks like and where its class evidence lies."""

    evidence: str = ""  # where the class evidence is (always inside the reference mask)
    classes: dict[str, Any] = field(default_factory=dict)  # class name -> what its lesion looks like
    nuisance: str = ""  # what varies outside the lesion, independently of the class


@dataclass(frozen=True)
class DatasetCard:
    """One dataset's card. ``classes`` and ``counts`` are in the fixed order used for label ids."""

    key: str
    title: str
    modality: str
    classes: tuple[str, ...]
    counts: tuple[int, ...]
    positive: str = ""  # the positive class of a binary task; "" for multi-class
    aliases: tuple[str, ...] = ()
    mask_definition: str = ""  # how the reference masks are defined
    mask_kind: str = "reference"  # reference | derived | none (no masks: localisation is skipped)
    citation: str = ""
    licence: str = ""
    images_from: str = ""  # where to obtain the images
    masks_from: str = ""  # where to obtain the masks
    raw_layout: str = ""  # the layout ``bench prepare --raw`` expects
    notes: str = ""
    convert: ConvertSection = field(default_factory=ConvertSection)
    phantom: PhantomSection = field(default_factory=PhantomSection)
    path: str = ""  # the file this card was read from (set by the reader)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_binary(self) -> bool:
        return len(self.classes) == 2

    def class_index(self, name: str) -> int:
        """Label id of class ``name``; ``ValueError`` naming the valid classes if unknown."""
        try:
            return self.classes.index(name)
        except ValueError:
            raise ValueError(
                f"class {name!r} is not in card {self.key!r}; classes: {', '.join(self.classes)}"
            ) from None


def _check(card: DatasetCard, source: str) -> None:
    def bad(key: str, why: str) -> CardError:
        return CardError(f"{source}: {key}: {why}")

    stem = Path(source).stem
    if card.key != stem:
        raise bad("key", f"{card.key!r} must equal the file name {stem!r}")
    if card.key.startswith(SYNTHETIC_PREFIX):
        raise bad("key", f"must not start with {SYNTHETIC_PREFIX!r} (reserved for phantoms)")
    if len(card.classes) < 2:
        raise bad("classes", f"needs at least two classes, got {list(card.classes)}")
    if len(set(card.classes)) != len(card.classes):
        raise bad("classes", f"duplicate class names in {list(card.classes)}")
    if any(not c.strip() for c in card.classes):
        raise bad("classes", "empty class name")
    if len(card.counts) != len(card.classes):
        raise bad("counts", f"{len(card.counts)} counts for {len(card.classes)} classes")
    if any(c < 0 for c in card.counts):
        raise bad("counts", f"negative count in {list(card.counts)}")
    if card.positive and card.positive not in card.classes:
        raise bad("positive", f"{card.positive!r} is not one of the classes {list(card.classes)}")
    if card.is_binary and not card.positive:
        raise bad("positive", "a binary dataset must name its positive class")
    if card.mask_kind not in MASK_KINDS:
        raise bad("mask_kind", f"{card.mask_kind!r} is not one of {MASK_KINDS}")
    for src, dst in card.convert.class_map.items():
        if dst not in card.classes:
            raise bad(f"convert.class_map.{src}", f"{dst!r} is not one of the classes {list(card.classes)}")
    for name in card.phantom.classes:
        if name not in card.classes:
            raise bad(f"phantom.classes.{name}", f"not one of the classes {list(card.classes)}")


def read_card(path: str | os.PathLike) -> DatasetCard:
    """Read and check one card file. ``CardError`` names the file and the offending key."""
    path = Path(path)
    data = read_toml(path)
    data.pop("path", None)
    try:
        card = from_dict(DatasetCard, data, source=str(path))
    except CardError:
        raise
    except ConfigError as exc:  # unknown key or wrong type: already names the key and the file
        raise CardError(str(exc)) from None
    except TypeError as exc:  # a required key is missing
        missing = [k for k in ("key", "title", "modality", "classes", "counts") if k not in data]
        raise CardError(f"{path}: missing required key(s) {', '.join(missing) or '?'} ({exc})") from None
    card = replace(card, path=str(path))
    _check(card, str(path))
    return card


def card_registry(root: str | os.PathLike = "") -> Registry[Path]:
    """``Registry`` of card key (and aliases) -> card file, from :func:`bench.data.paths.card_dirs`.

    A card in the data root shadows a packaged card (``bench/cards/``) of the same key. An alias that clashes with
    another card's key or alias is an error naming both files.
    """
    reg: Registry[Path] = Registry("dataset")
    for d in card_dirs(root):
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.toml")):
            if path.stem in reg:
                continue  # shadowed by an earlier directory
            try:
                aliases = tuple(read_toml(path).get("aliases", ()))
            except ConfigError:
                aliases = ()  # the error surfaces when this card is loaded
            taken = [a for a in (path.stem, *aliases) if a in reg]
            if taken:  # an alias (or the key) already claimed by another card
                raise CardError(f"{path}: aliases: {taken[0]!r} is already claimed (by {reg.get(taken[0])}); "
                                "remove it from one of the two cards")
            reg.register(path.stem, path, aliases=aliases)
    return reg


def split_key(key: str) -> tuple[bool, str]:
    """``"synthetic-cov_x"`` -> ``(True, "cov_x")``; ``"cov_x"`` -> ``(False, "cov_x")``.

    A phantom's confounder suffix is not part of the card key: ``"synthetic-cov_x+tag@0.8"`` ->
    ``(True, "cov_x")`` (see :func:`split_confounder`).
    """
    if key.startswith(SYNTHETIC_PREFIX):
        return True, key[len(SYNTHETIC_PREFIX):].partition(CONFOUNDER_SEP)[0]
    return False, key


def split_confounder(key: str) -> tuple[str, str, float | None]:
    """A phantom key with a confounder suffix -> ``(key without it, confounder spec, p)``.

    ``"synthetic-lidc_idri+tag@0.8"`` -> ``("synthetic-lidc_idri", "tag", 0.8)``;
    ``"synthetic-ham10000+ink@Melanoma@1"`` -> ``("synthetic-ham10000", "ink@Melanoma", 1.0)``: the spec is
    ``cue`` or ``cue@Class`` (as ``--confounder``), the last ``@`` gives ``confounder_p``. Each (phantom,
    cue, p) is then its own dataset with its own folder, so a sweep over p never regenerates one phantom
    in place. A key without a suffix -> ``(key, "", None)``. ``ValueError`` for a malformed suffix.
    """
    if not key.startswith(SYNTHETIC_PREFIX) or CONFOUNDER_SEP not in key:
        return key, "", None
    head, _, tail = key.partition(CONFOUNDER_SEP)
    spec, at, p_text = tail.rpartition("@")
    try:
        p = float(p_text) if at and spec else math.nan
    except ValueError:
        p = math.nan
    if not 0.0 <= p <= 1.0:  # NaN fails too
        raise ValueError(f"dataset {key!r}: a confounder suffix is +CUE@P or +CUE@Class@P with P in [0, 1], "
                         f"e.g. {head}+tag@0.8")
    return head, spec, p


def canonical_key(key: str, root: str | os.PathLike = "") -> str:
    """Resolve aliases: ``"mnist"`` -> ``"ham10000"``, ``"synthetic-mnist"`` -> ``"synthetic-ham10000"``.

    A confounder suffix is kept, with p written in its shortest form (``"+tag@1.0"`` -> ``"+tag@1"``).
    """
    synthetic, base = split_key(key)
    reg = card_registry(root)
    if base not in reg:
        raise ValueError(f"no card for dataset {key!r}; known: {', '.join(reg.names())} "
                         f"(or synthetic-<key>[+cue@p]); cards are read from {', '.join(map(str, card_dirs(root)))}")
    base = reg.canonical(base)
    if not synthetic:
        return base
    _, spec, p = split_confounder(key)
    return SYNTHETIC_PREFIX + base + (f"{CONFOUNDER_SEP}{spec}@{p:g}" if spec else "")


def load_card(key: str, root: str | os.PathLike = "") -> DatasetCard:
    """The card of dataset ``key`` (aliases and ``synthetic-<key>`` accepted)."""
    _, base = split_key(canonical_key(key, root))
    return read_card(card_registry(root).get(base))


def list_cards(root: str | os.PathLike = "") -> list[DatasetCard]:
    """Every card found, sorted by key."""
    reg = card_registry(root)
    return [read_card(reg.get(k)) for k in reg.names()]
