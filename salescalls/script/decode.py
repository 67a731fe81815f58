"""Stage sequences from per-utterance probabilities: a hidden-Markov decoder and its priors.

`viterbi` finds the most likely stage sequence of a call and `posteriors` (forward-backward) how
sure the decoder is of each utterance's stage; both can penalise entering a stage at a given
utterance (`_step_transitions`). The priors: cold-start transitions from the script's order
(`order_prior`: stay, move on, rarely skip or go back), the first utterance's stage
(`initial_prior`) and the last one's (`final_prior`), and the same counted from labelled calls,
smoothed towards those priors (`learn_transitions`, `learn_final`). Plain numpy over stage
positions: nothing here knows words or the classifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # for annotations only: stages imports this module
    from salescalls.script.stages import LabelledCall


def order_prior(
    n_stages: int,
    required: list[bool] | None = None,
    stay: float = 0.7,
    back: float = 0.04,
    sign_off: float = 0.05,
    forward_decay: float = 0.3,
    sign_off_stay: float = 0.85,
) -> np.ndarray:
    """Cold-start transition matrix from the script's order.

    From stage i: stay with probability `stay` (stages span several utterances: 0.7 expects about
    three, as in sales calls; 0.8, five, held a stage through the flat probabilities of poorly
    recognised speech, measured on Hungarian calls and MultiWOZ, see the README); go back with
    total probability `back` (objections send calls back to the offer); go to the sign-off (the
    last stage) with probability `sign_off`, since a customer can end a call at any point; and
    move forward with the rest: each *required* stage jumped over makes a target `forward_decay`
    times less likely (skipping a required stage is rare), jumping over optional stages is free.
    The sign-off itself stays with `sign_off_stay` and otherwise goes back, evenly: a goodbye lasts
    a few utterances, and a near-certain stay (0.96, measured until 2026-12-02) made it a sink that
    swallowed every unsure utterance after an early one (MultiWOZ dev cold end stages 49.6 -> 53.2 %,
    Russian typed demo calls 5 -> 6 of 6, nothing worse; see the README).
    """
    required = [True] * n_stages if required is None else list(required)
    matrix = np.zeros((n_stages, n_stages))
    last = n_stages - 1
    for i in range(n_stages):
        back_share = back if i > 0 else 0.0
        if i == last:
            if i > 0:
                matrix[i, :i] = (1 - sign_off_stay) / i
            matrix[i, i] = sign_off_stay if i > 0 else 1.0
            continue
        if i > 0:
            matrix[i, :i] = back_share / i
        matrix[i, i] = stay
        forward = 1 - stay - back_share
        if i + 1 < last:
            jumped = np.cumsum([0] + [int(r) for r in required[i + 1 : last - 1]])  # required stages passed
            decay = forward_decay**jumped
            matrix[i, i + 1 : last] = (forward - sign_off) * decay / decay.sum()
            matrix[i, last] = sign_off
        else:
            matrix[i, last] = forward
    return matrix


def initial_prior(n_stages: int) -> np.ndarray:
    """Cold-start first-utterance distribution: each stage half as likely as the one before."""
    weights = 0.5 ** np.arange(n_stages)
    return weights / weights.sum()


def final_prior(n_stages: int, sign_off: float = 0.9) -> np.ndarray:
    """Cold-start stage of a call's last utterance: mostly the sign-off (the script's last stage),
    since a recorded call ends with a goodbye far more often than in the middle of a stage. A
    misheard "goodbye" ("not interested, don't buy") then still ends the call."""
    final = np.full(n_stages, (1 - sign_off) / max(n_stages - 1, 1))
    final[-1] = sign_off if n_stages > 1 else 1.0
    return final


def learn_transitions(
    calls: list[LabelledCall], stages: tuple[str, ...], prior: np.ndarray, prior_weight: float = 20.0
) -> tuple[np.ndarray, np.ndarray]:
    """Transition matrix and initial distribution counted from labelled calls.

    Each row is smoothed with `prior_weight` pseudo-counts spread like the script-order prior,
    so a transition never seen in the labels stays possible, and a row with few observations
    stays close to the script's order: the data decides only where there is data.
    """
    k = len(stages)
    position = {name: i for i, name in enumerate(stages)}
    counts = np.zeros((k, k))
    first = np.zeros(k)
    for call in calls:
        sequence = [position[s] for s in call.stages if s in position]
        if sequence:
            first[sequence[0]] += 1
        for a, b in zip(sequence, sequence[1:], strict=False):
            counts[a, b] += 1
    transitions = counts + prior_weight * prior
    transitions /= transitions.sum(axis=1, keepdims=True)
    initial = first + prior_weight * initial_prior(k)
    return transitions, initial / initial.sum()


def learn_final(
    calls: list[LabelledCall], stages: tuple[str, ...], prior: np.ndarray, prior_weight: float = 20.0
) -> np.ndarray:
    """Last-utterance stage distribution counted from labelled calls whose last utterance is
    labelled, smoothed with `prior_weight` pseudo-counts of the prior."""
    position = {name: i for i, name in enumerate(stages)}
    counts = np.zeros(len(stages))
    for call in calls:
        if call.stages and call.stages[-1] in position:
            counts[position[call.stages[-1]]] += 1
    final = counts + prior_weight * prior
    return final / final.sum()


def _step_transitions(log_transitions: np.ndarray, log_entry: np.ndarray | None, t: int) -> np.ndarray:
    """Transitions into step t: the base matrix, with entering stage j (from another stage)
    changed by log_entry[t, j]; staying is never penalised."""
    if log_entry is None:
        return log_transitions
    step = log_transitions + log_entry[t][None, :]
    np.fill_diagonal(step, np.diag(log_transitions))
    return step


def viterbi(
    log_emissions: np.ndarray,
    log_transitions: np.ndarray,
    log_initial: np.ndarray,
    log_entry: np.ndarray | None = None,
) -> np.ndarray:
    """Most likely state sequence (T,) for emissions (T, K); log_entry (T, K), if given, is added
    to every transition that enters state k at step t from another state."""
    n_steps, n_states = log_emissions.shape
    score = log_initial + log_emissions[0]
    back = np.zeros((n_steps, n_states), dtype=np.int64)
    for t in range(1, n_steps):
        candidates = score[:, None] + _step_transitions(log_transitions, log_entry, t)
        back[t] = np.argmax(candidates, axis=0)
        score = candidates[back[t], np.arange(n_states)] + log_emissions[t]
    path = np.zeros(n_steps, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(n_steps - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def posteriors(
    log_emissions: np.ndarray,
    log_transitions: np.ndarray,
    log_initial: np.ndarray,
    log_entry: np.ndarray | None = None,
) -> np.ndarray:
    """Forward-backward state marginals (T, K): how sure the decoder is at each step.

    Scaled recursions in probability space (each step renormalised), which is exact and needs
    no log-sum-exp: emissions are first divided by their row maximum so nothing underflows.
    """
    emissions = np.exp(log_emissions - log_emissions.max(axis=1, keepdims=True))
    n_steps, n_states = emissions.shape
    steps = [np.exp(_step_transitions(log_transitions, log_entry, t)) for t in range(n_steps)]
    alpha = np.empty((n_steps, n_states))
    beta = np.ones((n_steps, n_states))
    alpha[0] = np.exp(log_initial - log_initial.max()) * emissions[0]
    alpha[0] /= alpha[0].sum()
    for t in range(1, n_steps):
        alpha[t] = (alpha[t - 1] @ steps[t]) * emissions[t]
        alpha[t] /= alpha[t].sum()
    for t in range(n_steps - 2, -1, -1):
        beta[t] = steps[t + 1] @ (emissions[t + 1] * beta[t + 1])
        beta[t] /= beta[t].sum()
    marginals = alpha * beta
    return marginals / marginals.sum(axis=1, keepdims=True)


# --- many calls at once -------------------------------------------------------------------------
# Rescoring 100,000 calls decodes 100,000 short sequences; one numpy step per utterance position
# over a batch of calls replaces one Python loop per call. The arithmetic per call is the same as
# `viterbi` / `posteriors` (paths identical, marginals equal to rounding). Calls are padded to the
# batch's longest; padded steps carry finite values and are never read back.


def _batch_steps(log_transitions: np.ndarray, log_entry: np.ndarray | None, t: int) -> np.ndarray:
    """(B, K, K) transitions into step t for every call of the batch (see `_step_transitions`)."""
    if log_entry is None:
        return log_transitions[None]
    step = log_transitions[None] + log_entry[:, t][:, None, :]
    diagonal = np.arange(log_transitions.shape[0])
    step[:, diagonal, diagonal] = np.diag(log_transitions)
    return step


def viterbi_many(
    log_emissions: np.ndarray,
    lengths: np.ndarray,
    log_transitions: np.ndarray,
    log_initial: np.ndarray,
    log_entry: np.ndarray | None = None,
) -> np.ndarray:
    """`viterbi` for B padded calls at once: emissions (B, T, K), lengths (B,), log_entry
    (B, T, K) or None; returns paths (B, T), each valid up to its call's length."""
    n_calls, n_steps, n_states = log_emissions.shape
    score = log_initial[None] + log_emissions[:, 0]
    back = np.zeros((n_calls, n_steps, n_states), dtype=np.int64)
    states = np.arange(n_states)
    for t in range(1, n_steps):
        candidates = score[:, :, None] + _batch_steps(log_transitions, log_entry, t)
        best = np.argmax(candidates, axis=1)
        updated = np.take_along_axis(candidates, best[:, None, :], axis=1)[:, 0] + log_emissions[:, t]
        live = t < lengths
        back[:, t] = np.where(live[:, None], best, states[None])
        score = np.where(live[:, None], updated, score)
    paths = np.zeros((n_calls, n_steps), dtype=np.int64)
    calls = np.arange(n_calls)
    paths[calls, lengths - 1] = np.argmax(score, axis=1)
    for t in range(n_steps - 1, 0, -1):
        live = t < lengths
        paths[live, t - 1] = back[calls[live], t, paths[live, t]]
    return paths


def posteriors_many(
    log_emissions: np.ndarray,
    lengths: np.ndarray,
    log_transitions: np.ndarray,
    log_initial: np.ndarray,
    log_entry: np.ndarray | None = None,
) -> np.ndarray:
    """`posteriors` for B padded calls at once (shapes as in `viterbi_many`): marginals (B, T, K)."""
    emissions = np.exp(log_emissions - log_emissions.max(axis=2, keepdims=True))
    n_calls, n_steps, n_states = emissions.shape
    alpha = np.empty((n_calls, n_steps, n_states))
    beta = np.ones((n_calls, n_steps, n_states))
    first = np.exp(log_initial - log_initial.max())[None] * emissions[:, 0]
    alpha[:, 0] = first / first.sum(axis=1, keepdims=True)
    # Without entry penalties every step has the same matrix: exponentiate it once, not per step
    # and pass; with them, each step's matrix once, shared by the forward and the backward pass.
    if log_entry is None:
        steps_into = [np.exp(log_transitions)[None]] * n_steps
    else:
        steps_into = [None] + [np.exp(_batch_steps(log_transitions, log_entry, t)) for t in range(1, n_steps)]
    for t in range(1, n_steps):
        forward = np.matmul(alpha[:, t - 1][:, None, :], steps_into[t])[:, 0]
        forward *= emissions[:, t]
        alpha[:, t] = forward / forward.sum(axis=1, keepdims=True)
    for t in range(n_steps - 2, -1, -1):
        backward = np.matmul(steps_into[t + 1], (emissions[:, t + 1] * beta[:, t + 1])[:, :, None])[:, :, 0]
        backward /= backward.sum(axis=1, keepdims=True)
        beta[:, t] = np.where((t + 1 < lengths)[:, None], backward, 1.0)
    marginals = alpha * beta
    return marginals / marginals.sum(axis=2, keepdims=True)
