"""What every focus-* command does, whatever it works on; imports nothing else of the project.

- commands: the command-line contract of the six console scripts (help with defaults, exit statuses,
  logging, signals, errors mapped to exit statuses: `run_command`)
- messages: user values quoted and listed in messages, and the errors that end a command
- inputs: reading a user's small files safely, hashing files
- outputs: files and folders written whole under the user's umask, staged output folders
- locks: one lock per folder that a command writes in, naming its holder
"""
