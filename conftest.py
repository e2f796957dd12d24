"""Test-wide environment, set before any test module or notebook kernel starts."""
import os

os.environ["SMOKE_TEST"] = "1"                  # notebooks switch to tiny synthetic data and one epoch
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"    # no online version check
os.environ["MPLBACKEND"] = "Agg"
os.environ.pop("CIFAR10_ROOT", None)            # tests never read a real dataset
