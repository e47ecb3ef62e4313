"""One data owner: its Flower ClientApp, its data, its private training and its budget."""
