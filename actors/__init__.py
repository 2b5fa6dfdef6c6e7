"""A small actor and supervisor runtime on trio.

An actor is a task that owns a bounded :class:`Inbox` and is known to the rest
of the program only through its :class:`ActorRef`. Supervisors restart crashed
children one for one, give up loudly with :exc:`RestartIntensityExceeded`, and
stop their children in reverse start order. This package is generic: it knows
nothing about the application built on it.
"""

from ._actor import Actor as Actor
from ._actor import Inbox as Inbox
from ._actor import start_actor as start_actor
from ._child import ChildHandle as ChildHandle
from ._child import ChildSpec as ChildSpec
from ._child import StartFunction as StartFunction
from ._dynamic import DynamicSupervisor as DynamicSupervisor
from ._errors import ActorStopped as ActorStopped
from ._errors import ChildNotFound as ChildNotFound
from ._errors import DuplicateChildName as DuplicateChildName
from ._errors import RestartIntensityExceeded as RestartIntensityExceeded
from ._errors import TooManyChildren as TooManyChildren
from ._ref import ActorRef as ActorRef
from ._reply import ReplySlot as ReplySlot
from ._restart import Backoff as Backoff
from ._restart import BackoffSchedule as BackoffSchedule
from ._restart import RestartPolicy as RestartPolicy
from ._restart import RestartWindow as RestartWindow
from ._supervisor import OnChildExit as OnChildExit
from ._supervisor import Supervisor as Supervisor
from ._supervisor import open_supervisor as open_supervisor
