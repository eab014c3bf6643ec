<?php
/**
 * `modified_after` on the REST API's customer list, so Keepwell polls only what changed.
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

/**
 * WooCommerce's `GET /wc/v3/customers` has no date filter, so a caller that wants the customers
 * changed since its last look has to read them all. WooCommerce records every customer save in
 * the `last_update` user meta (a Unix time); this narrows the list to those saved at or after
 * `modified_after`, read as UTC with `dates_are_gmt=true` and in the site's time zone otherwise
 * (as the orders endpoint reads it). A response it narrowed says so in the
 * `X-Keepwell-Modified-After` header, so the caller knows it need not filter the full list itself.
 */
class Keepwell_Rest {

	const HEADER = 'X-Keepwell-Modified-After';

	/**
	 * Whether this request's customer query was narrowed.
	 *
	 * @var bool
	 */
	private static $narrowed = false;

	/**
	 * Hooks into the customers endpoint's query and the response it sends.
	 */
	public static function init() {
		add_filter( 'woocommerce_rest_customer_query', array( __CLASS__, 'customer_query' ), 10, 2 );
		add_filter( 'rest_post_dispatch', array( __CLASS__, 'mark_response' ), 10, 3 );
	}

	/**
	 * The Unix time `modified_after` names, or null when it is absent or not a date.
	 *
	 * @param mixed $value        The parameter as sent.
	 * @param bool  $dates_are_gmt Whether the time is UTC rather than the site's local time.
	 * @return int|null
	 */
	public static function cutoff( $value, $dates_are_gmt ) {
		if ( ! is_string( $value ) || '' === trim( $value ) ) {
			return null;
		}
		$zone = $dates_are_gmt ? new DateTimeZone( 'UTC' ) : wp_timezone();
		try {
			$when = new DateTimeImmutable( trim( $value ), $zone );
		} catch ( Exception $e ) {
			return null;
		}
		return $when->getTimestamp();
	}

	/**
	 * Adds the `last_update` condition to the customers endpoint's WP_User_Query arguments.
	 *
	 * @param array           $args    WP_User_Query arguments.
	 * @param WP_REST_Request $request The request.
	 * @return array
	 */
	public static function customer_query( $args, $request ) {
		$cutoff = self::cutoff( $request->get_param( 'modified_after' ), rest_sanitize_boolean( $request->get_param( 'dates_are_gmt' ) ) );
		if ( null === $cutoff ) {
			return $args;
		}
		$meta_query   = isset( $args['meta_query'] ) ? (array) $args['meta_query'] : array(); // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_query -- the only record of a customer's last change.
		$meta_query[] = array(
			'key'     => 'last_update',
			'value'   => $cutoff,
			'compare' => '>=',
			'type'    => 'NUMERIC',
		);
		$args['meta_query'] = $meta_query; // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_query
		self::$narrowed     = true;
		return $args;
	}

	/**
	 * Tells the caller the list was narrowed.
	 *
	 * @param WP_HTTP_Response $response The response.
	 * @param WP_REST_Server   $server   The server.
	 * @param WP_REST_Request  $request  The request.
	 * @return WP_HTTP_Response
	 */
	public static function mark_response( $response, $server, $request ) {
		if ( self::$narrowed && $response instanceof WP_HTTP_Response ) {
			$response->header( self::HEADER, 'applied' );
		}
		self::$narrowed = false;
		return $response;
	}
}
