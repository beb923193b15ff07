"""Schedule triggers: when their ticks fall (`rules`) and how the maintenance leader fires
them (`firing`)."""
