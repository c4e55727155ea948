"""Training: clip data over the shards, backbones, the IIC objective, pretraining and fine-tuning."""
