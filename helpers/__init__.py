"""Helper library of the CIFAR-10 course (Session 8: normalization, Session 9: advanced convolutions).

One module per concept, each usable on its own:

* ``data``        CIFAR-10 files (safe loading, checks, synthetic data), the validation split,
                  statistics, albumentations pipelines, datasets and loaders
* ``device_data`` the fast path: dataset and batched augmentation on the device
* ``models``      the S8 and S9 networks
* ``rf``          receptive-field tables
* ``summary``     model summaries (torchinfo)
* ``train``       training loop, evaluation, checkpoints, resume
* ``recipes``     every hyperparameter of each recipe (seed, tuned)
* ``plots``       figures
* ``run``         command line: ``python -m helpers.run {s8,s9}``
"""
