import pytest

from helpers import data


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory):
    """A small synthetic dataset in the CIFAR-10 python layout (written once per session)."""
    root = tmp_path_factory.mktemp("cifar")
    data.write_synthetic_cifar(root, n_train=1024, n_test=200, seed=0)
    return root


@pytest.fixture(scope="session")
def splits(cifar_root):
    return data.load_cifar10(cifar_root, train=True), data.load_cifar10(cifar_root, train=False)


@pytest.fixture(autouse=True)
def _close_figures():
    """Figures a test draws are closed after it (pyplot keeps every open figure alive)."""
    yield
    import matplotlib.pyplot as plt
    plt.close("all")
