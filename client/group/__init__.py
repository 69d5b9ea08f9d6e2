"""Consumer groups, client side: finding the coordinator, membership, assignors."""
