"""The autoregressive policy of the Neural and Evo-NAS agents.

Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture Search" (arXiv:1811.09828):
a recurrent network reads the embedding of the previous choice (a zero input at the first step)
and one output head per position gives the distribution of that position's value. Every head
starts at zero, so a fresh policy is exactly uniform and a fresh Evo-NAS agent mutates like aging
evolution.

Two paths share the same parameters:

- ``AutoregressivePolicy.log_prob_and_entropy`` runs the torch network teacher-forced over whole
  sequences, and training uses it.
- ``PolicySampler`` runs the same network one step at a time in numpy on views of the torch
  parameters. Generating a sequence is a Python loop of tiny matrix products, where numpy's cost
  per call is lower than torch's: one 20-position sequence took 0.45 ms against 1.05 ms with
  torch's LSTMCell on the shared 2-core VM. The views share memory with the parameters, so
  optimizer steps and ``load_state_dict`` reach the sampler without a copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CELLS = ("lstm", "gru")

# Added to the logits of padded head entries. exp(-1e4) underflows to exactly 0 in float32, so the
# valid entries of a head keep an exactly uniform distribution at initialization.
_INVALID_LOGIT = -1.0e4


@dataclass
class PolicyConfig:
    """Shape of the autoregressive policy network."""

    cell: str = "lstm"
    """Recurrent cell: "lstm" or "gru"."""
    hidden_size: int = 32
    """Units of each recurrent layer."""
    embedding_size: int = 16
    """Size of the embedding of the previous choice that is fed to the recurrent network."""
    num_layers: int = 1
    """Stacked recurrent layers."""

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"policy.cell must be one of {list(CELLS)}, got {self.cell!r}.")
        for name in ("hidden_size", "embedding_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"policy.{name} must be an int >= 1, got {value!r}.")


class AutoregressivePolicy(nn.Module):
    """pi(a_i | a_1, ..., a_{i-1}) over a fixed-length sequence of categorical choices.

    Args:
        cardinalities: number of values of each position.
        config: network shape.
        generator: torch generator for the random initial weights of the embedding and the
            recurrent layers; the heads always start at zero.

    The output heads are stored as one padded tensor ``head_weight`` of shape (n, K, H), where K
    is the largest cardinality, instead of n separate layers, so that all positions are computed
    in one batched product. Entries past a position's cardinality are masked to probability 0,
    receive zero gradient, and therefore stay zero.
    """

    input_offsets: torch.Tensor
    logit_mask: torch.Tensor

    def __init__(
        self,
        cardinalities: Sequence[int],
        config: PolicyConfig | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config = config or PolicyConfig()
        self.cardinalities = tuple(int(k) for k in cardinalities)
        if not self.cardinalities or min(self.cardinalities) < 1:
            raise ValueError(f"cardinalities must be a non-empty list of ints >= 1, got {list(cardinalities)!r}.")
        self.length = len(self.cardinalities)
        self.max_cardinality = max(self.cardinalities)
        config = self.config

        # Input token of position i + 1 is offset[i] + a_i: one embedding per (position, value).
        # The last position's value is never an input, so it has no embeddings.
        offsets = np.concatenate([[0], np.cumsum(self.cardinalities[:-1])])[:-1]
        num_tokens = max(int(sum(self.cardinalities[:-1])), 1)
        self.register_buffer("input_offsets", torch.as_tensor(offsets, dtype=torch.int64), persistent=False)
        valid = torch.arange(self.max_cardinality)[None, :] < torch.tensor(self.cardinalities)[:, None]
        self.register_buffer("logit_mask", torch.where(valid, 0.0, _INVALID_LOGIT), persistent=False)

        # torch's layers draw default weights from the global generator. Its state is restored
        # after construction, and reset_parameters draws from ``generator`` instead. Building on
        # the meta device would avoid the draws too, but it imports torch._dynamo, which costs
        # seconds of start-up.
        with torch.random.fork_rng(devices=[]):
            self.embedding = nn.Embedding(num_tokens, config.embedding_size)
            rnn_class = nn.LSTM if config.cell == "lstm" else nn.GRU
            self.rnn = rnn_class(config.embedding_size, config.hidden_size, num_layers=config.num_layers,
                                 batch_first=True)
        self.head_weight = nn.Parameter(torch.zeros(self.length, self.max_cardinality, config.hidden_size))
        self.head_bias = nn.Parameter(torch.zeros(self.length, self.max_cardinality))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the embedding and recurrent weights as PyTorch's defaults do, and zero the heads."""
        with torch.no_grad():
            nn.init.normal_(self.embedding.weight, generator=generator)
            bound = 1.0 / math.sqrt(self.config.hidden_size)
            for weight in self.rnn.parameters():
                nn.init.uniform_(weight, -bound, bound, generator=generator)
            self.head_weight.zero_()
            self.head_bias.zero_()
        self.rnn.flatten_parameters()

    def logits(self, sequences: torch.Tensor) -> torch.Tensor:
        """Return the teacher-forced logits of every position, shape (batch, n, K).

        ``sequences`` is an int64 tensor of shape (batch, n); the logits at position i depend on
        the values before i only. Padded entries hold a large negative logit.
        """
        batch = sequences.shape[0]
        inputs = self.embedding(sequences[:, :-1] + self.input_offsets)  # (batch, n - 1, E)
        first = inputs.new_zeros(batch, 1, self.config.embedding_size)
        hidden, _ = self.rnn(torch.cat([first, inputs], dim=1))  # (batch, n, H)
        # One batched product over positions: (n, batch, H) @ (n, H, K) -> (n, batch, K).
        logits = torch.bmm(hidden.transpose(0, 1), self.head_weight.transpose(1, 2)).transpose(0, 1)
        return logits + self.head_bias + self.logit_mask

    def log_prob_and_entropy(self, sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return log pi(sequence) and the summed per-position entropy of each sequence.

        Both have shape (batch,). The log-probability is the sum over positions of
        log pi(a_i | a_1..a_{i-1}) of the values in ``sequences``. The entropy is the sum over
        positions of the entropy of pi(. | a_1..a_{i-1}) along the same prefixes (the
        ``totalEntropy`` of the Evo-NAS sampling algorithm).
        """
        log_probs = F.log_softmax(self.logits(sequences), dim=-1)  # (batch, n, K)
        return chosen_log_prob(log_probs, sequences), total_entropy(log_probs)

    def sampler(self) -> PolicySampler:
        return PolicySampler(self)


def chosen_log_prob(log_probs: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
    """Sum over positions of the log-probability of each sequence's values; (batch, n, K) -> (batch,)."""
    return log_probs.gather(-1, sequences.unsqueeze(-1)).squeeze(-1).sum(-1)


def total_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Sum over positions of the entropy of each distribution; (batch, n, K) -> (batch,)."""
    return -(log_probs.exp() * log_probs).sum(-1).sum(-1)


def sample_categorical(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one index per row of ``probabilities`` (rows need not be normalized) by inverting the CDF."""
    cdf = np.cumsum(probabilities, axis=1)
    threshold = rng.random((len(cdf), 1)) * cdf[:, -1:]
    drawn = (cdf < threshold).sum(axis=1)
    # Guards against a threshold equal to the total mass through rounding.
    return np.minimum(drawn, probabilities.shape[1] - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class PolicySampler:
    """Runs the policy one position at a time in numpy for a batch of sequences.

    Usage per batch: ``start(count)``, then for each position ``probabilities(rows)`` as needed
    followed by ``feed(values)`` with the values actually chosen, which may differ from a draw of
    the policy (in Evo-NAS most values are copied from the parent).

    The arrays are views of the policy's parameters, and the gate layout follows torch's LSTM
    (input, forget, cell, output) and GRU (reset, update, new) so that both paths compute the
    same function.
    """

    def __init__(self, policy: AutoregressivePolicy) -> None:
        self.policy = policy
        self.cardinalities = policy.cardinalities
        self.length = policy.length
        self.cell = policy.config.cell
        self.hidden_size = policy.config.hidden_size
        self.num_layers = policy.config.num_layers

        def view(tensor: torch.Tensor) -> np.ndarray:
            return tensor.detach().numpy()

        self.embedding = view(policy.embedding.weight)
        self.offsets = policy.input_offsets.numpy()
        rnn = policy.rnn
        self.weight_ih = [view(getattr(rnn, f"weight_ih_l{k}")).T for k in range(self.num_layers)]
        self.weight_hh = [view(getattr(rnn, f"weight_hh_l{k}")).T for k in range(self.num_layers)]
        self.bias_ih = [view(getattr(rnn, f"bias_ih_l{k}")) for k in range(self.num_layers)]
        self.bias_hh = [view(getattr(rnn, f"bias_hh_l{k}")) for k in range(self.num_layers)]
        self.head_weight = [view(policy.head_weight[i, :k]).T for i, k in enumerate(self.cardinalities)]
        self.head_bias = [view(policy.head_bias[i, :k]) for i, k in enumerate(self.cardinalities)]
        self._step_cell: Callable[[int, np.ndarray, int], np.ndarray] = (
            self._lstm_step if self.cell == "lstm" else self._gru_step
        )
        self.position = 0
        self.count = 0

    def start(self, count: int) -> None:
        """Begin ``count`` sequences at position 0 with zero recurrent state and a zero input."""
        self.count = count
        self.position = 0
        shape = (count, self.hidden_size)
        self._hidden = [np.zeros(shape, dtype=np.float32) for _ in range(self.num_layers)]
        self._cell_state = [np.zeros(shape, dtype=np.float32) for _ in range(self.num_layers)]
        self._input: np.ndarray | None = None  # None stands for the zero input of the first step
        self._advanced = False
        # LSTM adds both biases outside the recurrence, so they are summed once per batch.
        self._bias = [b_ih + b_hh for b_ih, b_hh in zip(self.bias_ih, self.bias_hh)]

    def advance(self) -> None:
        """Run the recurrent step of the current position on its input (once; later calls do nothing)."""
        if self._advanced:
            return
        if self.position >= self.length:
            raise RuntimeError(f"All {self.length} positions were already sampled; call start() again.")
        layer_input = self._input
        for layer in range(self.num_layers):
            layer_input = self._step_cell(layer, layer_input, self.count)  # type: ignore[arg-type]
        self._advanced = True

    def probabilities(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Return pi(. | prefix) at the current position for ``rows`` (default all), shape (rows, k).

        Only the rows asked for pay for the output head, so a position where every sequence keeps
        its parent's value costs just the recurrent step.
        """
        self.advance()
        hidden = self._hidden[-1] if rows is None else self._hidden[-1][rows]
        logits = hidden @ self.head_weight[self.position] + self.head_bias[self.position]
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities

    def feed(self, values: np.ndarray) -> None:
        """Set the values chosen at the current position; they become the next step's input."""
        self.advance()
        if self.position + 1 < self.length:
            self._input = self.embedding[self.offsets[self.position] + values]
        self.position += 1
        self._advanced = False

    def _input_gates(self, layer: int, layer_input: np.ndarray | None, count: int) -> np.ndarray:
        # torch's GRU keeps the recurrent bias inside the reset product, so only its input bias is added here.
        bias = self._bias[layer] if self.cell == "lstm" else self.bias_ih[layer]
        if layer_input is None:  # the zero input of the first step leaves only the bias
            return np.broadcast_to(bias, (count, bias.shape[0]))
        return layer_input @ self.weight_ih[layer] + bias

    def _lstm_step(self, layer: int, layer_input: np.ndarray, count: int) -> np.ndarray:
        size = self.hidden_size
        gates = self._input_gates(layer, layer_input, count) + self._hidden[layer] @ self.weight_hh[layer]
        squashed = _sigmoid(gates)
        cell_input = np.tanh(gates[:, 2 * size:3 * size])
        cell = squashed[:, size:2 * size] * self._cell_state[layer] + squashed[:, :size] * cell_input
        hidden = squashed[:, 3 * size:] * np.tanh(cell)
        self._cell_state[layer] = cell
        self._hidden[layer] = hidden
        return hidden

    def _gru_step(self, layer: int, layer_input: np.ndarray, count: int) -> np.ndarray:
        size = self.hidden_size
        from_input = self._input_gates(layer, layer_input, count)
        previous = self._hidden[layer]
        from_hidden = previous @ self.weight_hh[layer] + self.bias_hh[layer]
        reset_update = _sigmoid(from_input[:, :2 * size] + from_hidden[:, :2 * size])
        reset, update = reset_update[:, :size], reset_update[:, size:]
        new = np.tanh(from_input[:, 2 * size:] + reset * from_hidden[:, 2 * size:])
        hidden = (1.0 - update) * new + update * previous
        self._hidden[layer] = hidden
        return hidden


def sample_sequences(sampler: PolicySampler, count: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``count`` whole sequences from the policy; returns int64 indices of shape (count, n)."""
    sequences = np.empty((count, sampler.length), dtype=np.int64)
    sampler.start(count)
    for position in range(sampler.length):
        values = sample_categorical(sampler.probabilities(), rng)
        sampler.feed(values)
        sequences[:, position] = values
    return sequences
