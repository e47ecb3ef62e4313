"""Judge a release: utility, fidelity and membership attacks, from the run directory alone.

Used at the end of every run and by ``fedsynth evaluate RUN_DIR``. It reads the
released data, the last checkpoint (the last round's global model: the VAE's release
model, the GAN's discriminator; the GAN's release samples its generator average) and
the public data split; members are the pooled training records, non-members
the holdout (which never trained, P7).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from client.dataset import LabelledData, canaries, train_holdout
from genai_models import build_model, resolve
from privacy.experiment import ConfigError, ExperimentConfig
from server.checkpoints import load_latest
from simulations.attacks import dcr_attack, discriminator_attack, elbo_attack
from simulations.collapse import release_flags
from simulations.fidelity import image_fidelity, table_fidelity
from simulations.quality_report import sdmetrics_quality
from simulations.reidentification import anonymeter_risks
from simulations.utility import tstr_trtr


def _released_images(path: Path, value_max: float) -> LabelledData:
    """The released images, or a one-line ConfigError naming the file that cannot be read."""
    try:
        with np.load(path) as synth:
            x, y = synth["x"], synth["y"]
    except FileNotFoundError:
        raise ConfigError(f"{path}: no release to evaluate (the run stopped before it)") \
            from None
    except Exception as err:  # truncated, not an npz, or without x and y
        raise ConfigError(f"{path}: the release cannot be read ({type(err).__name__}); "
                          "expected an npz with arrays x and y") from None
    if x.ndim != 2 or len(x) != len(y):
        raise ConfigError(f"{path}: x has shape {x.shape} and y {y.shape}; expected one row "
                          "of x per label")
    return LabelledData(x / value_max, y)


def evaluate_release(run_dir: Path, config: ExperimentConfig,
                     theoretical_epsilon: float | None) -> dict:
    """Return the report's ``utility``, ``fidelity`` and ``attacks`` sections."""
    schema_path = config.schema_path
    spec, codec = resolve(config.dataset, schema_path)
    seed = config.seed
    train, holdout = train_holdout(config.dataset, config.holdout, seed, config.data_path,
                                   schema_path)
    risks = None
    if codec is None:
        synthetic = _released_images(run_dir / "synthetic" / "synthetic.npz", spec.value_max)
        fidelity = image_fidelity(synthetic, train, holdout, seed)
    else:
        # Encoding the released CSV with the schema also proves it respects the schema.
        frame = pd.read_csv(run_dir / "synthetic" / "synthetic.csv", dtype=str,
                            keep_default_na=False)
        synthetic = LabelledData(*codec.encode(frame, "synthetic.csv"))
        released, real = codec.decode(synthetic.x, synthetic.y), codec.decode(holdout.x,
                                                                              holdout.y)
        fidelity = table_fidelity(released, real, codec.schema, synthetic.x, holdout.x, seed)
        fidelity["sdmetrics"] = sdmetrics_quality(released, real, codec.schema)
        fidelity["bounds_source"] = codec.schema.bounds_source
        risks = anonymeter_risks(released, codec.decode(train.x, train.y), real, codec.schema,
                                 seed)
    delta = config.delta
    attacks = {"dcr": dcr_attack(synthetic.x, train.x, holdout.x, delta, seed)}
    checkpoint = load_latest(run_dir)
    model_attack = None
    if checkpoint is not None:
        model = build_model(config.model, spec, hidden_dim=config.hidden_dim,
                            latent_dim=config.latent_dim)
        model.load_state_dict(checkpoint["model"])
        # The VAE is attacked through its per-record ELBO, the GAN through its
        # discriminator's score (LOGAN): the last round's model, which the owners were
        # sent. The GAN's release samples its generator average, judged by the DCR attack.
        model_attack = elbo_attack if config.model == "vae" else discriminator_attack
        attacks["model"] = {
            **model_attack(model, train, holdout, delta, seed),
            "attack": "per-record ELBO of the last round's model" if model_attack is elbo_attack
            else "discriminator score (LOGAN) of the last round's discriminator",
        }
    k = config.canaries
    if k and model_attack is not None:
        inserted, held_out = canaries(spec, k, seed)
        attacks["canaries"] = {
            **model_attack(model, inserted, held_out, delta, seed),
            "inserted_into": "owner 0",
            "attack": "the model attack, K inserted against K held-out canaries",
        }
    worst = max(a["empirical_epsilon"] for a in attacks.values())
    attacks["summary"] = {
        "max_empirical_epsilon": worst,
        "theoretical_epsilon": theoretical_epsilon,
        # An empirical lower bound above the proven upper bound means a bug somewhere.
        "exceeds_theory": theoretical_epsilon is not None and math.isfinite(theoretical_epsilon)
        and worst > theoretical_epsilon,
        "members": "pooled training records of all owners",
        "nonmembers": "the holdout",
    }
    if risks is not None:
        attacks["anonymeter"] = risks
    utility = tstr_trtr(synthetic, train, holdout, seed)
    return {
        "utility": utility,
        "fidelity": fidelity,
        "attacks": attacks,
        "release_checks": release_flags(synthetic, holdout, utility, fidelity),
    }
