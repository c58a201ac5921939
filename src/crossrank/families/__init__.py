"""Model families: how a kind of checkpoint turns (query, passage) pairs into inputs and scores."""
