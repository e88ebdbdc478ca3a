"""Training: the LightningModule, stage freezing rules, optimizer and schedule."""
