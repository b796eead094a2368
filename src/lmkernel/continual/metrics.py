"""The accuracy matrix of a sequence of tasks and the three numbers that summarise it.

``R[i][j]`` is the accuracy on task ``j``'s held-out data after training stage ``i`` (0-based here, 1-based in
the report); ``None`` where it was not measured (a task not seen yet, or one without held-out data).

- ACC = (1/T) Σ_j R[T,j]  — average accuracy after the last stage (Lopez-Paz & Ranzato 2017).
- BWT = 1/(T−1) Σ_{j<T} (R[T,j] − R[j,j])  — backward transfer: negative when learning later tasks hurt
  earlier ones (Lopez-Paz & Ranzato 2017).
- Forgetting f_j = max_{l<T} R[l,j] − R[T,j]; average forgetting = 1/(T−1) Σ_{j<T} f_j (Chaudhry et al. 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

Matrix = list[list[float | None]]


@dataclass(frozen=True)
class Summary:
    acc: float | None
    bwt: float | None
    forgetting: float | None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(matrix: Matrix) -> Summary:
    """ACC, BWT and average forgetting of a (lower-triangular) accuracy matrix; None where undefined."""
    if not matrix:
        return Summary(None, None, None)
    last = len(matrix) - 1
    final = matrix[last]
    acc = _mean([v for v in final if v is not None])
    bwt, forgetting = [], []
    for j in range(last):
        now = final[j] if j < len(final) else None
        if now is None:
            continue
        if j < len(matrix[j]) and matrix[j][j] is not None:
            bwt.append(now - matrix[j][j])
        earlier = [row[j] for row in matrix[:last] if j < len(row) and row[j] is not None]
        if earlier:
            forgetting.append(max(earlier) - now)
    return Summary(acc, _mean(bwt), _mean(forgetting))


def _cell(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def markdown(matrix: Matrix, tasks: list[str], methods: list[str] | None = None) -> str:
    """The report's section: the matrix (rows: after stage i, columns: task j, accuracy in %) and the summary."""
    s = summarise(matrix)
    lines = ["## Continual learning", "",
             "Accuracy (%) on each task's held-out data after each stage; a task is the labels and data of "
             "one stage, scored over every label learned so far.", "",
             "| after stage | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for i, row in enumerate(matrix):
        how = f" ({methods[i]})" if methods and i < len(methods) else ""
        lines.append(f"| {i + 1}{how} | " + " | ".join(_cell(row[j] if j < len(row) else None)
                                                     for j in range(len(tasks))) + " |")
    fmt = {k: ("n/a" if v is None else f"{100 * v:+.1f}" if k == "bwt" else f"{100 * v:.1f}")
           for k, v in (("acc", s.acc), ("bwt", s.bwt), ("f", s.forgetting))}
    lines += ["", f"- **ACC** = (1/T) Σ_j R[T,j] = {fmt['acc']} (average accuracy after the last stage, "
              "Lopez-Paz & Ranzato 2017)",
              f"- **BWT** = 1/(T−1) Σ_(j<T) (R[T,j] − R[j,j]) = {fmt['bwt']} (backward transfer; negative means "
              "later stages hurt earlier tasks)",
              f"- **average forgetting** = 1/(T−1) Σ_(j<T) (max_(l<T) R[l,j] − R[T,j]) = {fmt['f']} "
              "(Chaudhry et al. 2018)", ""]
    return "\n".join(lines)
