"""Who may see what: pure rules over a principal and a call's agent and queue."""

from __future__ import annotations

from dataclasses import dataclass

from console.users import Role, User, UsersFile


@dataclass(frozen=True)
class Principal:
    """The signed-in user, or an agent-panel token (`panel_only`: the agent's own stream and nothing else)."""

    username: str
    role: Role
    agent_id: str = ""
    queues: frozenset[str] = frozenset()  # supervisors: the queues of their teams
    panel_only: bool = False

    @classmethod
    def of(cls, user: User, users: UsersFile) -> Principal:
        return cls(
            username=user.username,
            role=user.role,
            agent_id=user.effective_agent_id if user.role == "agent" else "",
            queues=users.queues_of(user),
        )

    @classmethod
    def panel(cls, agent_id: str) -> Principal:
        return cls(username=f"panel:{agent_id}", role="agent", agent_id=agent_id, panel_only=True)

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("admin", "supervisor")


def can_see_call(who: Principal, *, agent_id: str | None, queue: str | None) -> bool:
    """An admin sees every call, a supervisor the calls of their teams' queues, an agent their own."""
    if who.panel_only:
        return False
    if who.role == "admin":
        return True
    if who.role == "supervisor":
        return queue is not None and queue in who.queues
    return bool(who.agent_id) and agent_id == who.agent_id


def can_listen(who: Principal, *, agent_id: str | None, queue: str | None) -> bool:
    """Listen-in is for supervisors and admins, on calls they can see."""
    return who.is_supervisor and can_see_call(who, agent_id=agent_id, queue=queue)


def can_open_agent_stream(who: Principal, agent_id: str) -> bool:
    """An agent (or their panel token) opens their own stream; an admin may open any (support)."""
    return who.role == "admin" or (who.role == "agent" and who.agent_id == agent_id)


def can_issue_panel_token(who: Principal) -> bool:
    """Integrations sign in as an admin to mint panel tokens for the agents they embed."""
    return who.role == "admin" and not who.panel_only
