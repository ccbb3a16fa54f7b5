"""DeepOBS's character-level LSTM (tolstoi_char_rnn).

An embedding of the vocabulary into 128 dimensions, two LSTM layers of 128
units, a dense layer back to the vocabulary. DeepOBS wraps each LSTM cell
in dropout of its input and output with keep probability 0.8 while
training: 0.2 on the embedding, 0.2 on the last output, and between the
layers the first layer's output dropout and the second's input dropout in
a row, i.e. keep 0.64 (dropout 0.36). torch's LSTM keeps two bias vectors
per layer where TF's cell keeps one (the same function, 4·128 more
parameters per layer, as DeepOBS's PyTorch port); torch's default
initialisation, as there.
"""

from __future__ import annotations

import torch
from torch import nn

HIDDEN = 128
KEEP = 0.8


class CharRNN(nn.Module):
    def __init__(self, vocabulary: int, hidden: int = HIDDEN):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, hidden)
        self.lstm1 = nn.LSTM(hidden, hidden, batch_first=True)
        self.lstm2 = nn.LSTM(hidden, hidden, batch_first=True)
        self.dense = nn.Linear(hidden, vocabulary)
        self.outer_dropout = nn.Dropout(1 - KEEP)
        self.inner_dropout = nn.Dropout(1 - KEEP * KEEP)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Next-character logits (B, T, vocabulary) for codes (B, T); every sequence starts from the zero state."""
        x, _ = self.lstm1(self.outer_dropout(self.embedding(codes)))
        x, _ = self.lstm2(self.inner_dropout(x))
        return self.dense(self.outer_dropout(x))
