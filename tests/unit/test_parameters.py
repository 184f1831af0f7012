"""Parameter schemas read from source match what Prefect stores for the imported flow.

The oracle is Prefect itself: each snippet is written to a module, imported, wrapped in
`prefect.flow` and passed to `parameter_schema`, dumped the way `RunnerDeployment` sends it
(`model_dump(exclude_unset=True)`). The product never imports Prefect; the tests may.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import textwrap
import typing
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from control_plane.parameters.docstrings import docstring_parameter_descriptions
from control_plane.parameters.names import ModuleContext
from control_plane.parameters.schema import build_parameter_schema
from control_plane.parameters.signatures import SchemaWarning

REPO_ROOT = Path(__file__).resolve().parents[2]

# Each snippet defines the flow function `f`. The id names the signature style.
EXACT_CASES: list[tuple[str, str]] = [
    ("no-params", "def f(): pass"),
    (
        "scalar-defaults",
        """
        def f(s: str = "x", i: int = 3, x: float = 1.5, b: bool = True, by: bytes = b"ab",
              whole_float: float = 1):
            pass
        """,
    ),
    ("required-scalars", "def f(s: str, i: int, x: float, b: bool): pass"),
    ("none-defaults", "def f(a: int = None, b=None, c: str = None): pass"),
    (
        "optional-and-union",
        """
        import typing
        from typing import Optional, Union
        def f(a: Optional[int] = None, b: Union[int, str] = 1,
              c: typing.Union[int, None, str] = None,
              d: Optional[Union[int, str]] = None, e: Union[Optional[int], str] = None,
              g: Union[None, int] = None, h: Optional[None] = None, k: Union[int] = 2):
            pass
        """,
    ),
    (
        "pep604-unions",
        """
        def f(a: int | str = 1, b: int | None = None, c: None | str = None,
              d: int | str | None = None, e: list[int] | None = None):
            pass
        """,
    ),
    (
        "builtin-containers",
        """
        def f(a: list = [], b: list[int] = [1, 2], c: dict = {}, d: dict[str, int] = {"a": 1},
              e: set[str] = {"b", "a"}, g: frozenset = frozenset(), h: tuple = (),
              k: set = set()):
            pass
        """,
    ),
    (
        "typing-containers",
        """
        from typing import Dict, FrozenSet, List, Mapping, Sequence, Set, Tuple
        def f(a: List[str] = [], b: Dict = {}, c: Dict[str, float] = {}, d: Set[int] = set(),
              e: FrozenSet[str] = frozenset(), g: Tuple = (), h: Sequence[int] = (1, 2),
              k: Mapping[str, str] = {}, m: List = [], n: Sequence = ()):
            pass
        """,
    ),
    (
        "tuples",
        """
        from typing import Tuple
        def f(a: tuple[int, str] = (1, "a"), b: tuple[int, ...] = (), c: Tuple[()] = (),
              d: tuple[int] = (1,), e: Tuple[float, ...] = (1.0, 2.5)):
            pass
        """,
    ),
    (
        "nested-generics",
        """
        from typing import Any, Dict, List, Optional, Tuple
        def f(a: Optional[List[Dict[str, Any]]] = None,
              b: dict[str, list[dict[str, int]]] = {},
              c: List[Tuple[int, Optional[str]]] = [],
              d: dict[str, dict[str, list[float]]] | None = None):
            pass
        """,
    ),
    (
        "dict-key-types",
        """
        import datetime, uuid
        from typing import Any, Literal, Optional
        def f(a: dict[int, int] = {1: 2}, b: dict[Literal["x", "y"], int] = {},
              c: dict[uuid.UUID, str] = {}, d: dict[datetime.date, int] = {},
              e: dict[Optional[str], int] = {}, g: dict[str, Any] = {}):
            pass
        """,
    ),
    (
        "literals",
        """
        from typing import Literal, Optional
        def f(z: Literal[1, 2], a: Literal["a", "b"] = "a", c: Literal["only"] = "only",
              m: Literal[1, "a"] = 1, t: Literal[True, False] = True, n: Literal[None] = None,
              o: Optional[Literal["x", "y"]] = None, d: Literal["a", "a", "b"] = "b",
              neg: Literal[-1, 0] = -1, u: Literal["a", None] = None, by: Literal[b"x"] = b"x",
              nested: Literal[Literal["p"], "q"] = "q"):
            pass
        """,
    ),
    (
        "any-and-object",
        """
        from typing import Any, Optional, Union
        def f(a: Any, b: Any = 1, c: object = None, d: Optional[Any] = None,
              e: Union[int, Any] = 1):
            pass
        """,
    ),
    (
        "str-enum-in-file",
        """
        import enum
        class Color(str, enum.Enum):
            RED = "red"
            GREEN = "green"
        def f(c: Color = Color.RED, d: Color = "green", e: list[Color] = [Color.GREEN]):
            pass
        """,
    ),
    (
        "int-enum-in-file",
        """
        from enum import IntEnum
        class Level(IntEnum):
            '''How loud.'''
            LOW = 1
            HIGH = 2
        def f(level: Level, other: Level | None = None, by_value: Level = 2):
            pass
        """,
    ),
    (
        "enum-auto-alias-and-mixed",
        """
        import enum
        from typing import Literal, Optional
        class Step(enum.Enum):
            A = enum.auto()
            B = enum.auto()
            C = "c"
            D = A
        class Mixed(enum.Enum):
            X = 1.5
            Y = None
            Z = (1, 2)
        def f(s: Step = Step.D, m: Optional[Mixed] = None, lit: Literal[Step.C] = Step.C,
              as_str: str = Step.C):
            pass
        """,
    ),
    (
        "pydantic-model-in-file",
        """
        from typing import Optional
        from pydantic import BaseModel, Field
        class Inner(BaseModel):
            a: int = 1
        class Config(BaseModel):
            '''Settings for one run.'''
            name: str = Field(description="the name")
            n: int = Field(default=3, ge=1, le=10)
            inner: Inner = Inner()
            opt: Optional[Inner] = None
            tags: list[str] = []
            extra_tags: list[str] = Field(default_factory=list)
        def f(cfg: Config, other: Config = Config(name="x"), maybe: Optional[Inner] = None,
              many: list[Inner] = [], as_dict: Inner = {"a": 5}):
            '''Run.

            Args:
                cfg: The configuration.
            '''
        """,
    ),
    (
        "pydantic-model-config-and-validators",
        """
        import pydantic
        class Strict(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(extra="forbid", title="Strict settings")
            x: int
            @pydantic.field_validator("x")
            @classmethod
            def positive(cls, v):
                return v
        class Sub(Strict):
            y: str = "y"
        def f(s: Strict, t: Sub | None = None):
            pass
        """,
    ),
    (
        "dataclass-in-file",
        """
        import dataclasses
        from typing import Optional
        @dataclasses.dataclass
        class Window:
            start: int
            labels: list[str] = dataclasses.field(default_factory=list)
            end: Optional[int] = None
        def f(w: Window):
            pass
        """,
    ),
    (
        "local-classes-inside-other-types",
        """
        import dataclasses
        import enum
        from typing import Optional, Union
        from pydantic import BaseModel
        class Color(str, enum.Enum):
            RED = "red"
            GREEN = "green"
        class Shape(enum.Enum):
            '''A shape.'''
            DOT = (0, 0)
            LINE = (1, 0)
        class Point(BaseModel):
            x: int = 0
            color: Color = Color.GREEN
        @dataclasses.dataclass
        class Box:
            corner: Point
            shape: Shape = Shape.DOT
        def f(by_color: dict[Color, Point] = {}, pair: tuple[Color, int] = (Color.RED, 1),
              colors: set[Color] = {Color.RED, Color.GREEN}, boxes: Optional[list[Box]] = None,
              shape: Shape = Shape.LINE, either: Union[Point, Box, None] = None,
              shapes: frozenset[Shape] = frozenset({Shape.DOT, Shape.LINE}),
              nested: dict[str, list[Optional[Color]]] = {"a": [Color.RED, None]}):
            pass
        """,
    ),
    (
        "plain-class-in-file",
        """
        class Handle:
            def __init__(self):
                self.x = 1
        def f(h: Handle = None, hs: list[Handle] = [], u: int | Handle = 1):
            pass
        """,
    ),
    (
        "datetime-uuid-path-decimal",
        """
        import datetime, decimal, pathlib, uuid
        def f(a: datetime.datetime, b: datetime.date = datetime.date(2024, 1, 31),
              c: datetime.timedelta = datetime.timedelta(minutes=5), d: uuid.UUID = None,
              e: pathlib.Path = pathlib.Path("/tmp/x"),
              g: decimal.Decimal = decimal.Decimal("1.50"),
              h: datetime.time = datetime.time(1, 2),
              k: datetime.datetime = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
              m: uuid.UUID = uuid.UUID("12345678-1234-5678-1234-567812345678"),
              n: decimal.Decimal | None = None):
            pass
        """,
    ),
    (
        "from-imports-of-stdlib-types",
        """
        from datetime import date, datetime as DateTime, timedelta
        from pathlib import Path
        from uuid import UUID
        def f(a: date, b: DateTime | None = None, c: timedelta = timedelta(hours=1),
              p: Path = Path("data"), u: UUID | None = None):
            pass
        """,
    ),
    (
        "annotated-with-field",
        """
        from typing import Annotated
        from pydantic import Field
        def f(a: Annotated[int, Field(ge=1)] = 2, b: Annotated[str, "meta"] = "a",
              c: Annotated[int, Field(description="ignored by prefect")] = 1,
              d: Annotated[int | None, Field(ge=0, le=5)] = None):
            pass
        """,
    ),
    (
        "field-defaults",
        """
        from pydantic import Field
        def f(a: int = Field(default=1, ge=0, description="from Field"),
              b: str = Field(description="required, described"),
              c: list = Field(default_factory=list),
              d: int = Field(1, json_schema_extra={"position": 9, "foo": "bar"}),
              e: int = Field(default=2, title="dropped")):
            pass
        """,
    ),
    (
        "pydantic-types",
        """
        from pydantic import PositiveInt, SecretStr, HttpUrl, conint
        def f(a: PositiveInt = 1, b: SecretStr = None, c: HttpUrl = "https://example.com",
              d: conint(ge=0, le=9) = 3):
            pass
        """,
    ),
    (
        "google-docstring",
        '''
        def f(a: int, b: str = "x", c: float = 1.0, d=None):
            """Do the thing.

            Longer text.

            Args:
                a: The first one.
                b (str): The second one,
                    over two lines.
                c (float, optional): Third.

                    With a paragraph.
                d: Fourth.

            Returns:
                Nothing.
            """
        ''',
    ),
    (
        "docstring-arguments-and-quirks",
        '''
        def f(x: int = 1, y: int = 2, z: int = 3, w: int = 4):
            """Summary.

            Arguments:
                x:
                y : spaced name does not match
                z (int): z text
                *w: starred does not match

            Parameters:
                w: the last section wins
            """
        ''',
    ),
    (
        "docstring-without-blank-line-is-ignored",
        '''
        def f(x: int = 1):
            """Summary.
            Args:
                x: not a section for griffe
            """
        ''',
    ),
    (
        "args-and-kwargs",
        """
        def f(a: int, *args, b: str = "x", **kwargs):
            pass
        """,
    ),
    ("annotated-varargs", "def f(*args: int, **kwargs: str): pass"),
    # Prefect 3.9 made variadics optional collections (list[T] = [], dict[str, T] = {});
    # 3.8 kept T and made them required. The cases below differ between the two.
    (
        "varargs-of-generic-types",
        """
        from typing import Any, Optional
        def f(x: int = 1, *rest: Optional[list[int]], **options: dict[str, Any]):
            pass
        """,
    ),
    (
        "varargs-of-enum-and-model",
        """
        import enum
        from pydantic import BaseModel
        class Color(str, enum.Enum):
            RED = "red"
        class Point(BaseModel):
            x: int = 0
        def f(*colors: Color, **points: Point):
            pass
        """,
    ),
    (
        "varargs-with-descriptions",
        '''
        def f(a: int, *items: str, **extra: float):
            """Summary.

            Args:
                a: first
                items: the rest
                extra: named ones
            """
        ''',
    ),
    (
        "varargs-prefect-cannot-describe",
        """
        from typing import Callable
        def f(*hooks: Callable, **named_hooks: Callable[[int], int]):
            pass
        """,
    ),
    (
        "varargs-quoted-and-future",
        """
        from __future__ import annotations
        import datetime
        def f(*when: datetime.date, **labels: "str | None"):
            pass
        """,
    ),
    (
        "keyword-only",
        """
        def f(a: int, *, b: str, c: bool = False):
            pass
        """,
    ),
    (
        "positional-only",
        """
        def f(a: int, b: str = "x", /, c: float = 1.0, *, d: int = 4):
            pass
        """,
    ),
    (
        "self-and-cls-are-skipped",
        """
        def f(self, a: int, cls=None, *, b):
            pass
        """,
    ),
    (
        "typing-alias-module",
        """
        import typing as t
        def f(a: t.Optional[t.List[int]] = None, b: t.Dict[str, t.Any] = {},
              c: t.Literal["x"] = "x"):
            pass
        """,
    ),
    (
        "from-import-aliases",
        """
        from typing import Optional as Opt, List as L, Literal as Lit
        import datetime as dt
        import collections.abc
        def f(a: Opt[int] = None, b: L[str] = [], c: Lit["p", "q"] = "p",
              d: dt.datetime = None, e: collections.abc.Sequence[str] = (),
              g: collections.abc.Mapping[str, int] = {}):
            pass
        """,
    ),
    (
        "typing-extensions",
        """
        from typing_extensions import Annotated, Literal
        def f(a: Literal["a", "b"] = "a", b: Annotated[int, "doc"] = 1):
            pass
        """,
    ),
    (
        "future-annotations",
        """
        from __future__ import annotations
        import typing
        from typing import Optional
        def f(a: int = 1, c: typing.Optional[int] = None, d: Optional[int] = None,
              e: list[str] | None = None, g: dict[str, int] = {}):
            pass
        """,
    ),
    (
        "future-annotations-with-model",
        """
        from __future__ import annotations
        from pydantic import BaseModel
        class Item(BaseModel):
            name: str
            children: list[str] = []
        def f(item: Item, items: list[Item] | None = None):
            pass
        """,
    ),
    (
        "future-annotations-type-checking-fallback",
        """
        from __future__ import annotations
        import typing
        from typing import TYPE_CHECKING, Optional
        if TYPE_CHECKING:
            from somewhere import Bar
        def f(a: int = 1, b: Bar = None, c: typing.Optional[int] = None, d: Optional[int] = None,
              e: list[str] = [], g: dict[str, int] | None = None):
            pass
        """,
    ),
    (
        "quoted-annotations",
        """
        import enum
        from typing import Optional
        class Color(enum.Enum):
            RED = "red"
        def f(a: "int" = 1, b: "list[str]" = None, c: "Color" = "red", d: Optional["int"] = None,
              e: list["Color"] = []):
            pass
        """,
    ),
    (
        "async-def",
        """
        async def f(a: int, b: str = "x"):
            pass
        """,
    ),
    (
        "unannotated-with-defaults",
        """
        def f(a, b=1, c="x", d=1.5, e=True, g=None, h=[1, 2], k={"a": 1}, m=(1, (2, 3))):
            pass
        """,
    ),
    (
        "negative-and-arithmetic-defaults",
        """
        def f(a: int = -1, b: float = -1.5, c: int = +3, d: int = 60 * 60, e: float = 1e999,
              g: int = 2 ** 10, h: str = "a" + "b", k: complex = 1 + 2j):
            pass
        """,
    ),
    (
        "collection-literal-defaults",
        """
        def f(a: tuple = (1, "a"), b: list = [1, [2, 3]], c: dict = {"b": {"z": 1, "a": 2}, "a": 1},
              d: set = {3, 1, 2}, e: frozenset = frozenset({"b", "a"}),
              g: dict = {1: "a", None: "b"},
              h: list = [{"b": 1, "a": [{"z": 1, "y": 2}]}], k: dict = {"x": {1, 2}},
              m: dict = {True: 1}):
            pass
        """,
    ),
    (
        "module-constant-defaults",
        """
        BUCKET = "raw-data"
        LIMIT = 10 * 1000
        NAMES = ("a", "b")
        def f(bucket: str = BUCKET, limit: int = LIMIT, names: tuple[str, ...] = NAMES):
            pass
        """,
    ),
    (
        "type-aliases",
        """
        from typing import Any, Optional, Union
        JSON = dict[str, Any]
        MaybeInt = Optional[int]
        Scalar = Union[int, str]
        def f(a: JSON = {}, b: MaybeInt = None, c: Union[MaybeInt, str] = None,
              d: list[Scalar] = []):
            pass
        """,
    ),
    (
        "names-colliding-with-basemodel",
        """
        def f(json: int, copy: str = "a", schema=None, dict: int = 1):
            pass
        """,
    ),
    (
        "params-named-default-and-properties",
        """
        from typing import Optional
        def f(default: Optional[list[int]] = None, properties: dict[str, int] = {"b": 1, "a": 2}):
            pass
        """,
    ),
    (
        "unsupported-types-prefect-treats-as-any",
        """
        from typing import Callable, Collection
        def f(a: Callable = None, b: Collection[int] = [], c: type = int):
            pass
        """,
    ),
    (
        "try-except-import-fallback",
        """
        try:
            from typing import Literal
        except ImportError:
            from typing_extensions import Literal
        def f(mode: Literal["fast", "slow"] = "fast"):
            pass
        """,
    ),
    (
        "abc-and-typing-aliases",
        """
        import collections.abc as cabc, pathlib, types, typing
        def f(a: typing.MutableSequence[int] = [], b: cabc.MutableSequence = [],
              c: typing.MutableSet[str] = set(), d: cabc.MutableSet = set(),
              e: cabc.Set = frozenset(), g: typing.AbstractSet = set(),
              h: cabc.MutableMapping[str, int] = {}, i: typing.MutableMapping = {},
              j: pathlib.PurePosixPath = None, k: types.NoneType = None, m: typing.Text = "t",
              n: cabc.Mapping = {}, o: typing.FrozenSet = frozenset()):
            pass
        """,
    ),
    (
        "stdlib-types-only-pydantic-knows",
        """
        import collections, ipaddress, re, typing
        def f(a: typing.Deque[int] = None, b: ipaddress.IPv4Address = None, c: re.Pattern = None,
              d: collections.deque = None, e: typing.Iterable[str] = ()):
            pass
        """,
    ),
    (
        "star-imports-of-known-modules",
        """
        from typing import *
        from datetime import *
        def f(a: Optional[List[int]] = None, b: date = None, c: Dict[str, Any] = {}):
            pass
        """,
    ),
    (
        "datetime-default-variants",
        """
        import datetime
        def f(a: datetime.datetime = datetime.datetime(2020, 1, 2, 3, 4, 5, 678),
              b: datetime.timedelta = datetime.timedelta(days=-1, seconds=3),
              c: datetime.timedelta = datetime.timedelta(days=2, hours=3, microseconds=5),
              d: datetime.datetime = datetime.datetime(
                  2020, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
              )):
            pass
        """,
    ),
    (
        "set-defaults-are-sorted",
        """
        def f(a: set = {"b", "a", "c"}, b: set = {1, "a"}, c: frozenset[int] = frozenset({3, 2, 1}),
              d: dict = {"s": {3, 1}}):
            pass
        """,
    ),
    (
        "enum-variants",
        """
        import enum
        class Base(str, enum.Enum):
            pass
        class C(Base):
            A = "a"
        class S(enum.StrEnum):
            FOO = enum.auto()
            BAR = enum.auto()
        class Perm(enum.Flag):
            R = 4
            W = 2
        class Converted(str, enum.Enum):
            ONE = 1
        def f(c: C = C.A, s: S = S.BAR, p: Perm = Perm.R, k: Converted = Converted.ONE,
              d: dict[C, int] = {C.A: 1}):
            pass
        """,
    ),
    (
        "model-features",
        """
        from typing import Annotated, ClassVar, Literal, Optional
        from pydantic import BaseModel, ConfigDict, Field
        LIMIT = 5
        Tags = list[str]
        class M(BaseModel):
            model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [{}]})
            kind: Literal["a", "b"] = "a"
            n: Annotated[int, Field(ge=0)] = 0
            ratio: float = Field(0.5, gt=0, lt=1, description="ratio")
            renamed: int = Field(0, alias="Renamed")
            limit: int = LIMIT
            tags: Tags = []
            maybe: Optional[Tags] = None
            count: ClassVar[int] = 0
        class Strict(BaseModel, extra="forbid"):
            a: int = 1
        def f(m: M = M(), s: Strict | None = None):
            pass
        """,
    ),
    (
        "model-inheritance-and-required-field",
        """
        import pydantic as pd
        from pydantic import BaseModel as BM, Field
        class A(BM):
            x: int = Field(..., description="x is required")
            y: str = "a"
        class B(A):
            y: str = "b"
            z: float = 0.5
        class C(pd.BaseModel):
            b: B
        def f(b: B, a: A = A(x=1), c: C | None = None):
            pass
        """,
    ),
    (
        "recursive-models",
        """
        from typing import Optional
        from pydantic import BaseModel
        class Tree(BaseModel):
            value: int
            left: Optional["Tree"] = None
            right: "Optional[Tree]" = None
            children: list["Tree"] = []
        def f(t: Tree = Tree(value=1)):
            pass
        """,
    ),
    (
        "mutually-recursive-models-under-future-annotations",
        """
        from __future__ import annotations
        from typing import Optional
        from pydantic import BaseModel
        class A(BaseModel):
            b: Optional[B] = None
        class B(BaseModel):
            a: Optional[A] = None
            n: int = 0
        def f(a: A, b: B = None):
            pass
        """,
    ),
    (
        "model-refers-to-a-later-model",
        """
        from typing import Optional
        from pydantic import BaseModel
        class Outer(BaseModel):
            inner: Optional["Inner"] = None
        class Inner(BaseModel):
            x: int
        def f(o: Outer):
            pass
        """,
    ),
    (
        "pydantic-dataclasses",
        """
        import pydantic
        from pydantic.dataclasses import dataclass
        @pydantic.dataclasses.dataclass
        class P:
            a: int = 1
        @dataclass(frozen=True)
        class Q:
            b: str = pydantic.Field(default="x", description="bee")
        def f(p: P = None, q: Q = Q()):
            pass
        """,
    ),
    (
        "annotated-types-constraints",
        """
        from typing import Annotated
        import annotated_types
        def f(a: Annotated[int, annotated_types.Ge(1)] = 1,
              b: Annotated[str, annotated_types.MaxLen(3)] = "x"):
            pass
        """,
    ),
    (
        "constrained-types-in-containers",
        """
        from pydantic import conint, constr
        def f(a: list[conint(ge=0)] = [], b: constr(min_length=1, pattern="^a") = "a",
              c: dict[constr(pattern="^k"), int] = {}):
            pass
        """,
    ),
    (
        "union-of-models-and-literal",
        """
        from typing import Literal, Optional, Union
        from pydantic import BaseModel
        class A(BaseModel):
            a: int = 1
        class B(BaseModel):
            b: str = "x"
        def f(x: Union[A, B] = A(), y: list[Union[A, B]] = [],
              z: Union[A, Literal["auto"]] = "auto", w: Optional[A] = {"a": 2}):
            pass
        """,
    ),
    (
        "strings-inside-types-resolve-in-prefects-namespace",
        """
        import typing
        def f(a: typing.List["int"] = [], b: "typing.Optional[int]" = None,
              c: dict["str", "t.Any"] = {}):
            pass
        """,
    ),
    (
        "quoted-annotation-under-future-annotations",
        """
        from __future__ import annotations
        import enum
        class Color(enum.Enum):
            RED = "red"
        def f(c: Color | None = None, d: "Color" = Color.RED, e: "int" = 1):
            pass
        """,
    ),
    (
        "quoted-type-checking-name-without-future",
        """
        from typing import TYPE_CHECKING, Optional
        if TYPE_CHECKING:
            from foo import Bar
        def f(a: "Bar" = None, b: "Optional[int]" = None, c: Optional[int] = None, d: "int" = 1):
            pass
        """,
    ),
    (
        "bare-typing-forms",
        """
        import typing
        def f(a: typing.Optional = None, b: typing.Union = None, c: typing.Literal = None):
            pass
        """,
    ),
    (
        "non-utf8-bytes-default",
        """
        def f(a: bytes = b"\\xff", b: bytes = b"ok"):
            pass
        """,
    ),
]


def prefect_schema(source: str, tmp_path: Path) -> dict[str, Any]:
    """What Prefect stores on the deployment for the flow `f` in `source`.

    The snippet is imported the way Prefect loads an entrypoint (a module registered in
    `sys.modules`, which pydantic needs to resolve forward references), wrapped in
    `prefect.flow`, and dumped the way `RunnerDeployment` sends it.
    """
    import prefect
    from prefect.utilities.callables import parameter_schema

    # typing caches Union[...] by its arguments' set: Optional[Union[int, str]] comes back
    # as Union[str, int, None] if any code in this process made that one first (a flow run
    # of another test does). A `prefect deploy` process starts with empty caches; so does
    # the oracle. (Private, test-only: typing keeps its caches' clear functions there.)
    for clear in typing._cleanups:  # type: ignore[attr-defined]
        clear()
    name = f"signature_{uuid.uuid4().hex}"
    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with warnings.catch_warnings():
            # pydantic warns when it leaves out a default it cannot serialize.
            warnings.simplefilter("ignore")
            spec.loader.exec_module(module)
            flow = prefect.flow(module.f)
            schema = parameter_schema(flow).model_dump(exclude_unset=True)
    finally:
        del sys.modules[name]
    # Deployments send the schema as JSON (DeploymentCreate.model_dump(mode="json")).
    return json.loads(json.dumps(schema))


def test_the_oracle_is_the_prefect_whose_rules_discovery_follows() -> None:
    import prefect

    # Discovery reads the version from the metadata (it never imports Prefect); the oracle
    # is the Prefect that imports. A run against another Prefect must not mix the two.
    assert prefect.__version__ == importlib.metadata.version("prefect")


def our_schema(source: str) -> tuple[dict[str, Any], list[SchemaWarning]]:
    tree = ast.parse(source)
    context = ModuleContext.from_module(tree)
    func = next(
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "f"
    )
    return build_parameter_schema(func, context)


@pytest.mark.parametrize(
    "source", [pytest.param(textwrap.dedent(src), id=case_id) for case_id, src in EXACT_CASES]
)
def test_schema_matches_what_prefect_stores(source: str, tmp_path: Path) -> None:
    expected = prefect_schema(source, tmp_path)

    schema, _ = our_schema(source)

    assert schema == expected
    # Same key order too: the JSON text is identical.
    assert json.dumps(schema) == json.dumps(expected)


# Where Prefect itself falls back to an open schema (or drops a default), we match it and
# say why; every other exact case comes without warnings.
EXACT_CASE_WARNINGS: dict[str, list[str]] = {
    "future-annotations-type-checking-fallback": [
        "parameter 'b': Prefect cannot evaluate this flow's annotations ('Bar' is not defined",
        "parameter 'd': Prefect cannot evaluate this flow's annotations ('Bar' is not defined",
    ],
    "quoted-annotations": [
        "parameter 'e': type 'list['Color']' quotes 'Color' inside the type, which pydantic "
        "resolves in Prefect's own namespace",
    ],
    "unsupported-types-prefect-treats-as-any": [
        "parameter 'a': type 'Callable' is a type pydantic cannot describe",
        "parameter 'c': default 'int' is 'int', which has no JSON form",
    ],
    "non-utf8-bytes-default": ["parameter 'a': default 'b'\\xff'' is not valid UTF-8"],
    "quoted-annotation-under-future-annotations": [
        "parameter 'd': type 'Color' quotes 'Color' inside the type",
    ],
    "quoted-type-checking-name-without-future": [
        "parameter 'a': Prefect cannot evaluate this flow's annotations",
        "parameter 'b': Prefect cannot evaluate this flow's annotations",
    ],
    "varargs-prefect-cannot-describe": [
        "parameter 'hooks': type 'Callable' is a type pydantic cannot describe",
        "parameter 'named_hooks': type 'Callable[[int], int]' is a type pydantic cannot describe",
    ],
    "bare-typing-forms": [
        "parameter 'a': type 'typing.Optional' is a bare Optional",
        "parameter 'b': type 'typing.Union' is a bare Union",
        "parameter 'c': type 'typing.Literal' is a bare Literal",
    ],
}


@pytest.mark.parametrize(
    ("source", "messages"),
    [
        pytest.param(textwrap.dedent(src), EXACT_CASE_WARNINGS.get(case_id, []), id=case_id)
        for case_id, src in EXACT_CASES
    ],
)
def test_warnings_only_where_prefect_also_falls_back(source: str, messages: list[str]) -> None:
    _, problems = our_schema(source)

    assert len(problems) == len(messages), problems
    for problem, message in zip(problems, messages, strict=True):
        assert message in problem.message


OPEN_CASES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    (
        "relative-import-from-the-repository",
        """
        from .models import Config
        def f(cfg: Config, n: int = 1):
            pass
        """,
        {
            "cfg": {"position": 0, "title": "cfg"},
            "n": {"default": 1, "position": 1, "title": "n", "type": "integer"},
        },
        ["parameter 'cfg': type 'Config' uses 'Config', imported from the repository ('.models')"],
    ),
    (
        "absolute-import-of-the-repository-package",
        """
        import mypkg
        from mypkg.settings import Settings
        def f(s: Settings | None = None, t: mypkg.Config = None):
            pass
        """,
        {
            "s": {"default": None, "position": 0, "title": "s"},
            "t": {"default": None, "position": 1, "title": "t"},
        },
        ["parameter 's': type 'Settings | None'", "parameter 't': type 'mypkg.Config'"],
    ),
    (
        "model-with-a-field-from-the-repository",
        """
        from pydantic import BaseModel
        from .types import Money
        class Order(BaseModel):
            amount: Money
        def f(order: Order):
            pass
        """,
        {"order": {"position": 0, "title": "order"}},
        ["parameter 'order': type 'Order' uses 'Order', whose field 'amount' uses 'Money'"],
    ),
    (
        "default-computed-at-import",
        """
        import datetime
        def f(when: datetime.datetime = datetime.datetime.now(), n: int = len("abc")):
            pass
        """,
        {
            "when": {"format": "date-time", "position": 0, "title": "when", "type": "string"},
            "n": {"position": 1, "title": "n", "type": "integer"},
        },
        [
            "parameter 'when': default 'datetime.datetime.now()'",
            "parameter 'n': default 'len('abc')'",
        ],
    ),
    (
        "name-from-an-unknown-module",
        """
        import pandas as pd
        def f(frame: pd.DataFrame = None):
            pass
        """,
        {"frame": {"default": None, "position": 0, "title": "frame"}},
        ["parameter 'frame': type 'pd.DataFrame' uses module 'pandas'"],
    ),
    (
        "class-with-its-own-schema-hook",
        """
        class Custom:
            @classmethod
            def __get_pydantic_core_schema__(cls, source, handler):
                raise NotImplementedError
        def f(c: Custom):
            pass
        """,
        {"c": {"position": 0, "title": "c"}},
        ["parameter 'c': type 'Custom' uses 'Custom', which defines __get_pydantic_core_schema__"],
    ),
    (
        "name-reserved-by-prefect-validation",
        """
        def f(model_config: int = 1):
            pass
        """,
        {"model_config": {"default": 1, "position": 0, "title": "model_config", "type": "integer"}},
        ["unless it is declared with validate_parameters=False"],
    ),
    (
        "underscore-parameter-prefect-refuses",
        """
        def f(_hidden: int = 1):
            pass
        """,
        {"_hidden": {"default": 1, "position": 0, "title": "_hidden", "type": "integer"}},
        ["pydantic refuses field names starting with an underscore"],
    ),
]


@pytest.mark.parametrize(
    ("source", "properties", "messages"),
    [
        pytest.param(textwrap.dedent(src), props, msgs, id=case_id)
        for case_id, src, props, msgs in OPEN_CASES
    ],
)
def test_unknowable_types_leave_an_open_schema_and_a_warning(
    source: str, properties: dict[str, Any], messages: list[str]
) -> None:
    schema, problems = our_schema(source)

    assert schema["properties"] == properties
    assert len(problems) == len(messages)
    for problem, message in zip(problems, messages, strict=True):
        assert message in problem.message
        assert problem.line >= 1


def test_warning_points_at_the_parameter_line() -> None:
    source = "from .models import Config\n\ndef f(\n    n: int,\n    cfg: Config,\n):\n    pass\n"

    _, problems = our_schema(source)

    assert [p.line for p in problems] == [5]
    assert problems[0].message.endswith(
        "its schema cannot be known without running code, so the parameter accepts any value"
    )


# The schema of a class defined in a file is made once per definition and reused by every
# file with the same definition. These files share class text but not its meaning (a
# constant, a nested class, an import or a base differs), or define a name twice: each
# must still get exactly what Prefect stores for it, in one process, in this order.
SHARED_DEFINITION_TEMPLATE = """
import enum
from pydantic import BaseModel
FIRST = {first!r}
Size = {size}
class Mode(str, enum.Enum):
    FULL = FIRST
    DELTA = "delta"
{options}
def f(mode: Mode = Mode.FULL, options: Options | None = None, modes: list[Mode] = []):
    pass
"""
OPTIONS = """
class Options(BaseModel):
    mode: Mode = Mode.FULL
    size: Size = 10
"""
SHARED_DEFINITION_FILES = [
    SHARED_DEFINITION_TEMPLATE.format(first="full", size="int", options=OPTIONS),
    # a constant the enum uses differs: the model's text is the same, its meaning is not
    SHARED_DEFINITION_TEMPLATE.format(first="everything", size="int", options=OPTIONS),
    # so does a type alias the model uses
    SHARED_DEFINITION_TEMPLATE.format(first="full", size="float", options=OPTIONS),
    # a quoted field type
    SHARED_DEFINITION_TEMPLATE.format(
        first="full", size="int", options=OPTIONS.replace("mode: Mode", 'mode: "Mode"')
    ),
    # a class name bound twice
    SHARED_DEFINITION_TEMPLATE.format(
        first="full", size="int", options=OPTIONS + OPTIONS.replace("FULL", "DELTA")
    ),
    # the first file again
    SHARED_DEFINITION_TEMPLATE.format(first="full", size="int", options=OPTIONS),
]


def test_files_sharing_a_class_definition_each_get_their_own_schema(tmp_path: Path) -> None:
    for index, source in enumerate(SHARED_DEFINITION_FILES):
        expected = prefect_schema(source, tmp_path)

        schema, problems = our_schema(source)

        assert (index, schema) == (index, expected)
        assert json.dumps(schema) == json.dumps(expected)
        assert problems == []


def test_class_bodies_are_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = textwrap.dedent(
        f"""
        import enum
        from pydantic import BaseModel
        class Color(str, enum.Enum):
            RED = "red"
            open({str(marker)!r}, "w").write("enum body ran")
        class Config(BaseModel):
            a: int = 1
            open({str(marker)!r}, "w").write("model body ran")
        def f(c: Color = Color.RED, cfg: Config = Config()):
            pass
        """
    )

    schema, problems = our_schema(source)

    assert not marker.exists()
    # Neither body can be read without running it: both parameters stay open.
    assert schema["properties"] == {
        "c": {"position": 0, "title": "c"},
        "cfg": {"position": 1, "title": "cfg"},
    }
    assert len(problems) == 4  # type and default of each
    assert all("whose body has 'open(" in p.message for p in problems)


DOCSTRINGS = [
    None,
    "",
    "Just a summary.",
    "Summary.\n\nArgs:\n    a: one\n    b (int): two\n        more\n",
    "Summary.\n\nArgs:\n  a: two-space indent\n    continued\n   odd indent\n  b: next\n",
    "Summary.\n\nArgs:\n\n    a: blank line below the title skips the section\n",
    "Args:\n    a: section on the first line\n",
    "Summary.\nArgs:\n    a: no blank line above\n",
    "Summary.\n\nParameters:\n    a: one\n\nReturns:\n    int: result\n\nArgs:\n    b: last wins\n",
    "Summary.\n\n```\nArgs:\n    a: inside a code fence\n```\n",
    "Summary.\n\nNote:\n    Args: inside an admonition\n\nArgs:\n    a: after it\n",
    "Summary.\n\nArgs:\n    a (list[int], optional): typed\n    b: has: colons\n    no colon\n",
    "Summary.\n\nKeyword Args:\n    a: not parameters\n",
    "Summary.\n\nArgs:\n    a: text\n\n        paragraph two\n\n    b: next\nAfter.\n",
    "\n    Indented docstring.\n\n    Args:\n        a: one\n        b: two\n    ",
    "Summary.\n\nExamples:\n    >>> f(1)\n\nArgs:\n    a: after examples\n",
    "Summary.\n\nParams:\n    x: params is also accepted\n",
    "Summary.\n\nArgs:\n\ta: tab indented\n",
]


@pytest.mark.parametrize("docstring", DOCSTRINGS)
def test_docstring_descriptions_match_prefects_parser(docstring: str | None) -> None:
    from prefect.utilities.callables import parameter_docstrings

    assert docstring_parameter_descriptions(docstring) == parameter_docstrings(docstring)


def test_module_imports_neither_prefect_nor_pydantic() -> None:
    code = (
        "import sys, ast\n"
        "from control_plane.parameters.names import ModuleContext\n"
        "from control_plane.parameters.schema import build_parameter_schema\n"
        'tree = ast.parse(\'import typing\\ndef f(a: typing.Optional[int] = None, b: str = "x"):'
        " pass')\n"
        "build_parameter_schema(tree.body[1], ModuleContext.from_module(tree))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'pydantic', "
        "'griffe')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.strip() == "[]"
