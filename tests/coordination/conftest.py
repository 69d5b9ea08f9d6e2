"""The ZooKeeper fixtures (``zookeeper``, ``zk_connect``, ``raw_zk``, ``expire_session``) are
in ``tests/support/zookeeper_fixtures.py``, loaded for every test by ``tests/conftest.py``."""
