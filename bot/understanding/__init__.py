"""Text to intent: the matcher, the crisis layer and their evaluation. The only package that
imports scikit-learn, rapidfuzz and fugashi; workers never import it."""
