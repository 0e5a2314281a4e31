"""What the Ray tests share. Where Ray is not installed, `import ray` finds this tests/ray folder
as a namespace package, so each test module skips on `ray.cloudpickle`, a module only the real
Ray has, rather than on `ray`."""

import pytest


@pytest.fixture
def local_ray():
    """A local Ray instance of 2 CPUs for one test."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
