"""``kpt-plugin tune``: measure the (runtime, fold plan) candidates of ``backend='auto'`` on this machine now and
cache the winners (``$KPT_PLUGIN_HOME/tuning.json``), instead of on the first batch of a ``use_hpip`` model."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        'tune', help="measure and cache backend='auto' / use_hpip's choice for this machine",
        description="Time every installed (runtime, fold plan) candidate (warmup, interleaved repeats, median), "
        "check the winner's heatmaps against fp32 torch (<= 1e-4) and cache it per model, input size, batch "
        'bucket, threads and CPU. Prints the table. use_hpip=True / backend="auto" reuse the cache.')
    p.add_argument('--model', nargs='+', default=None,
                   help='zoo names (default: PP-TinyPose_128x96 PP-TinyPose_256x192; one with --weights); a '
                        'detector (PicoDet-S_pedestrian_320 / _192) tunes the runtime of use_hpip pipelines\' detector')
    p.add_argument('--weights', default=None, help='local weights for the one --model')
    p.add_argument('--batch-sizes', nargs='+', type=int, default=[1, 8], help='batch sizes (default 1 8)')
    p.add_argument('--threads', type=int, default=None, help='CPU threads (default: torch.get_num_threads())')
    p.add_argument('--flip', action='store_true', help='tune the flip-fused graphs')
    p.add_argument('--precision', choices=['fp32', 'int8', 'bf16'], default='fp32', help='default fp32')
    p.add_argument('--force', action='store_true', help='measure again even when cached')
    p.set_defaults(func=run)
    return p


def run(args):
    import logging

    from kpt_plugin.errors import KptError
    from kpt_plugin.inference.detector import DetectorPredictor
    from kpt_plugin.inference.predictor import create_model
    from kpt_plugin.inference.runtime.tuning import cache_path, cpu_flags, cpu_model

    if any(b < 1 for b in args.batch_sizes):
        raise KptError(f'--batch-sizes must be >= 1, got {args.batch_sizes}')
    if args.threads is not None and args.threads < 1:
        raise KptError(f'--threads must be >= 1, got {args.threads}')
    models = args.model or ([None] if args.weights else ['PP-TinyPose_128x96', 'PP-TinyPose_256x192'])
    if args.weights and len(models) > 1:
        raise KptError('--weights goes with one --model')
    logging.getLogger('kpt_plugin').setLevel(logging.WARNING)  # the table says it all
    hpi = None if args.threads is None else dict(backend_config=dict(cpu_num_threads=args.threads))
    print(f'CPU: {cpu_model()} ({", ".join(cpu_flags()) or "no AVX2"}); cache: {cache_path()}')
    for name in models:
        model = create_model(name, model_dir=args.weights, device='cpu', flip=args.flip, backend='auto',
                             hpi_config=hpi, precision=args.precision)
        if isinstance(model, DetectorPredictor) and args.flip:
            raise KptError(f'{model.model_name}: a detector has no flip test; leave out --flip for it')
        auto = model.tuning if isinstance(model, DetectorPredictor) else model.runner
        w, h = model.input_size
        print(f'\n{model.model_name} {h}x{w} flip={"on" if args.flip else "off"} {args.precision}, '
              f'{auto.threads} threads')
        labels = ['/'.join(c) for c in auto.candidates]
        print('| batch | ' + ' | '.join(labels) + ' | choice |')
        print('|---' * (len(labels) + 2) + '|')
        for b in args.batch_sizes:
            bucket = auto.bucket_of(b)
            pair = auto.tune(bucket, force=args.force)
            ms = auto.tables.get(bucket, {})
            cells = [f'{ms[k]:.2f}' if k in ms else 'n/a' for k in labels]
            print(f'| {bucket} | ' + ' | '.join(cells) + f' | **{"/".join(pair)}** |')
    return 0
