"""The answer-quality evaluation set: real public files, questions about them, and the code that
computes each question's truth from the files and grades an answer against it.
"""
