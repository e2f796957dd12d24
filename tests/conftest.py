import pytest

from helpers import data, train


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory):
    """A small synthetic dataset in the CIFAR-10 python layout (written once per session)."""
    root = tmp_path_factory.mktemp("cifar")
    data.write_synthetic_cifar(root, n_train=1024, n_test=200, seed=0)
    return root


@pytest.fixture(scope="session")
def splits(cifar_root):
    return data.load_cifar10(cifar_root, train=True), data.load_cifar10(cifar_root, train=False)


@pytest.fixture
def watch_autocast(monkeypatch):
    """Call it to start recording (device_type, enabled) of every ``train.bf16_autocast`` entered from then on;
    it returns the list the entries go to."""
    def start() -> list[tuple[str, bool]]:
        entered, real = [], train.bf16_autocast
        monkeypatch.setattr(train, "bf16_autocast", lambda device_type, enabled, cache_enabled=True:
                            entered.append((device_type, enabled)) or real(device_type, enabled, cache_enabled))
        return entered
    return start


@pytest.fixture(autouse=True)
def _close_figures():
    """Figures a test draws are closed after it (pyplot keeps every open figure alive)."""
    yield
    import matplotlib.pyplot as plt
    plt.close("all")
