"""Wrong answers to lesson 00 (processes): fork, exit statuses, wait."""
from mutants import Mutant

MUTANTS = [
    Mutant("00.describe_status", "signal_number_not_name", '''
def describe_status(status):
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    return f"killed by {os.WTERMSIG(status)}"
''', fault=r"got 'killed by 9'"),
]
