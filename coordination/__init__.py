"""Cluster coordination: the ZooKeeper coordinator (kazoo) and the embedded single-node one.

Empty until the broker issue (3) brings the coordinator interface and the
embedded implementation, and the cluster issue (4) the kazoo one.
"""
