"""One recurrent actor-critic shared by every agent of a level, with one memory per agent.

A family whose learner moves ``N`` agents at once (``games.gridlevels`` with ``control="all"``) has trial
observations with per-agent leaves ``obs [N, ...]`` and ``prev_action [N]``, shared leaves ``prev_reward`` and
``new_episode`` (the team reward and the episode flag), and an action ``int32 [N]``.
:class:`SharedAgentsActorCritic` runs a :class:`~metarl_apps.networks.recurrent.RecurrentActorCritic` built on
the observation of **one** agent (its view, its own previous move, the shared reward and flag) for all ``N``
agents at once, by folding the agents into the batch:

* ``step``: ``[B, N, ...] -> [B*N, ...]`` (row ``b * N + j`` is agent ``j`` of task ``b``); the shared leaves
  ``[B]`` are repeated per agent; the state ``[B, N, H] -> [B*N, H]``;
* ``unroll``: ``[B, T, N, ...] -> [B*N, T, ...]`` (shared leaves ``[B, T] -> [B*N, T]``).

Outputs are unfolded to the multi-discrete layout RL² already handles (one categorical per action element,
joint log-prob = sum over agents): logits ``[B, N, n]`` (``[B, T, N, n]``); the value is the mean of the
agents' values, ``[B]`` (``[B, T]``) — every agent predicts the same team return from its own memory.

No agent index is fed to the network: parameters are shared and agent ``j``'s logits depend only on agent
``j``'s own inputs and memory (permuting the agents permutes the outputs). The state spec is
``TensorSpec([N, hidden])`` per LSTM/GRU state tensor, so a task's recurrent state holds every agent's memory
and is reset only at trial boundaries, exactly like the single-agent network's.
"""

from __future__ import annotations

import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.core.env import NEW_EPISODE
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.memory import zero_state
from metarl_apps.networks.recurrent import RecurrentActorCritic

#: Observation leaves with a leading agent dimension; every other leaf is shared by the agents.
PER_AGENT = ("obs", "prev_action")


def _drop_agent_dim(spec, num_agents: int, what: str):
    """The spec of one agent's slice of a ``[N, ...]`` spec (a clear error when the leading dim is not N)."""
    shape = spec.shape.as_list()
    if not shape or shape[0] != num_agents:
        raise MetaRLInputError(f"SharedAgentsActorCritic: {what} spec {spec} must have a leading agent dimension "
                               f"of size num_agents={num_agents}")
    if isinstance(spec, tensor_spec.BoundedTensorSpec):
        return tensor_spec.BoundedTensorSpec(shape[1:], spec.dtype, minimum=spec.minimum.flat[0],
                                             maximum=spec.maximum.flat[0], name=spec.name)
    return tensor_spec.TensorSpec(shape[1:], spec.dtype, name=spec.name)


def per_agent_specs(observation_spec: dict, action_spec, num_agents: int):
    """``(observation spec, action spec)`` of one agent, from the ``[N, ...]`` specs of all agents."""
    if not isinstance(observation_spec, dict) or any(k not in observation_spec for k in PER_AGENT):
        raise MetaRLInputError(f"SharedAgentsActorCritic: the observation spec must be a trial observation dict "
                               f"with keys {', '.join(PER_AGENT)}, got {observation_spec}")
    if not (isinstance(action_spec, tensor_spec.BoundedTensorSpec) and action_spec.dtype.is_integer
            and action_spec.shape.rank == 1):
        raise MetaRLInputError(f"SharedAgentsActorCritic: action spec {action_spec} must be a bounded integer "
                               f"[num_agents] spec (one discrete action per agent)")
    obs = {k: (tf.nest.map_structure(lambda s, k=k: _drop_agent_dim(s, num_agents, k), v) if k in PER_AGENT else v)
           for k, v in observation_spec.items()}
    return obs, _drop_agent_dim(action_spec, num_agents, "action")


class SharedAgentsActorCritic(tf.Module):
    """The interface of :class:`RecurrentActorCritic` (``state_spec``, ``initial_state``, ``step``, ``unroll``,
    ``action_shape``, ``num_values``, ``action_min``, ``slate_size``, ``cell_type``, ``hidden_size``) for ``N``
    agents acting with one shared network and ``N`` memories (see the module docstring).

    Args:
      observation_spec: the trial observation spec of all agents (``obs [N, ...]``, ``prev_action [N]``, ...).
      action_spec: bounded integer ``[N]``.
      num_agents: ``N`` (> 1).
      cell, hidden_size, embed_sizes: as :class:`RecurrentActorCritic` (of one agent).
    """

    def __init__(self, observation_spec, action_spec, num_agents: int, *, cell: str = "lstm",
                 hidden_size: int = 128, embed_sizes: tuple[int, ...] = (64,), trial_length: int = 1,
                 set_keys: int = 0, name: str = "shared_agents"):
        super().__init__(name=name)
        if isinstance(num_agents, bool) or not isinstance(num_agents, int) or num_agents < 2:
            raise MetaRLInputError(f"SharedAgentsActorCritic: num_agents={num_agents!r} must be an integer >= 2")
        self.num_agents = num_agents
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        agent_obs, agent_action = per_agent_specs(observation_spec, action_spec, num_agents)
        #: the network of one agent, shared by all agents
        self.agent_net = RecurrentActorCritic(agent_obs, agent_action, cell=cell, hidden_size=hidden_size,
                                              embed_sizes=embed_sizes, trial_length=trial_length, set_keys=set_keys,
                                              name="agent_net")
        self.action_shape = (num_agents,)
        self.num_values = self.agent_net.num_values
        self.action_min = self.agent_net.action_min
        self.slate_size = 0
        self.cell_type = self.agent_net.cell_type
        self.hidden_size = self.agent_net.hidden_size

    # ------------------------------------------------------------------ state
    @property
    def state_spec(self):
        return [tensor_spec.TensorSpec([self.num_agents, *s.shape], s.dtype) for s in self.agent_net.state_spec]

    def initial_state(self, batch_size) -> list[tf.Tensor]:
        return zero_state(self.state_spec, batch_size)

    # ---------------------------------------------------------------- folding
    def _fold_observation(self, observation, outer_rank: int):
        """``[B, (T,) N, ...]`` per-agent leaves and ``[B, (T,) ...]`` shared ones -> ``[B*N, (T,) ...]``."""
        n = self.num_agents

        def per_agent(x):
            x = tf.convert_to_tensor(x)
            if outer_rank == 2:  # [B, T, N, ...] -> [B, N, T, ...]
                rank = len(x.shape)
                x = tf.transpose(x, [0, 2, 1] + list(range(3, rank)))
            return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))

        def shared(x):
            x = tf.convert_to_tensor(x)
            x = tf.repeat(x[:, None], n, axis=1)  # [B, N, (T,) ...]
            return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))

        return {k: tf.nest.map_structure(per_agent if k in PER_AGENT else shared, v) for k, v in observation.items()}

    def _fold_state(self, state):
        return [tf.reshape(s, [-1, *spec.shape]) for s, spec in zip(state, self.agent_net.state_spec, strict=True)]

    def _unfold_state(self, state, batch):
        return [tf.reshape(s, [batch, self.num_agents, *spec.shape])
                for s, spec in zip(state, self.agent_net.state_spec, strict=True)]

    # ---------------------------------------------------------------- forward
    def step(self, observation, state):
        """One step: observation ``[B, ...]`` -> ``(logits [B, N, n], value [B], new_state [B, N, H])``."""
        batch = tf.shape(observation[NEW_EPISODE])[0]
        logits, value, new_state = self.agent_net.step(self._fold_observation(observation, 1),
                                                       self._fold_state(state))
        logits = tf.reshape(logits, [batch, self.num_agents, self.num_values])
        value = tf.reduce_mean(tf.reshape(value, [batch, self.num_agents]), axis=1)
        return logits, value, self._unfold_state(new_state, batch)

    def unroll(self, observation, state):
        """Sequences: ``[B, T, ...]`` -> ``(logits [B, T, N, n], value [B, T], final_state [B, N, H])``."""
        shape = tf.shape(observation[NEW_EPISODE])
        batch, steps = shape[0], shape[1]
        logits, value, final_state = self.agent_net.unroll(self._fold_observation(observation, 2),
                                                           self._fold_state(state))
        logits = tf.reshape(logits, [batch, self.num_agents, steps, self.num_values])
        logits = tf.transpose(logits, [0, 2, 1, 3])
        value = tf.reduce_mean(tf.reshape(value, [batch, self.num_agents, steps]), axis=1)
        return logits, value, self._unfold_state(final_state, batch)
